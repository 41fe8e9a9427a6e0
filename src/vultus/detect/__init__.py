"""Face detectors behind one interface; pick one by registry name."""

from vultus.detect.base import Detector


def load_detector(name: str = "yunet", **options) -> Detector:
    from vultus.models.registry import get_spec

    return get_spec(name, task="detect").load(**options)


__all__ = ["Detector", "load_detector"]
