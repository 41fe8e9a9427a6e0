"""Face embedders behind one interface; pick one by registry name."""

from vultus.embed.base import Embedder


def load_embedder(name: str = "sface", **options) -> Embedder:
    """The shared instance from the model cache (vultus.models.cache.get_model)."""
    from vultus.models.cache import get_model

    return get_model(name, task="embed", **options)


__all__ = ["Embedder", "load_embedder"]
