"""Downstream evaluation: classifiers trained on frozen embeddings, unbalanced vs re-balanced (`protocol`), as a
training config sets it (`from_config`); `fairdml evaluate RUN_DIR` reads a run folder (`fairdml.evaluate`)."""

from fairdml.utils._lazy import lazy_exports

_MODULES = {
    "fairdml.downstream.protocol": ("DownstreamData", "downstream_evaluation"),
    "fairdml.downstream.from_config": ("check_downstream_label", "downstream_for_datamodule"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
