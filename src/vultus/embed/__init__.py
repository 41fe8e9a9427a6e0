"""Face embedders behind one interface; pick one by registry name."""

from vultus.embed.base import Embedder


def load_embedder(name: str = "sface", **options) -> Embedder:
    from vultus.models.registry import get_spec

    return get_spec(name, task="embed").load(**options)


__all__ = ["Embedder", "load_embedder"]
