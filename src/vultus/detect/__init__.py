"""Face detectors behind one interface; pick one by registry name."""

from vultus.detect.base import Detector


def load_detector(name: str = "yunet", **options) -> Detector:
    """The shared instance from the model cache (vultus.models.cache.get_model)."""
    from vultus.models.cache import get_model

    return get_model(name, task="detect", **options)


__all__ = ["Detector", "load_detector"]
