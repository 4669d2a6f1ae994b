"""The embedding model (what is exported) and the LightningModule that trains it."""

from fairdml.utils._lazy import lazy_exports

_MODULES = {
    "fairdml.models.module": ("DMLModule",),
    "fairdml.models.embedding": ("EmbeddingModel", "save_embedding_model", "load_embedding_model"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
