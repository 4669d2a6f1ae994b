"""finDML fairness metrics: pure functions in `functional`, torchmetrics wrappers here, one `MetricSpec` each.

Exports load on first use, so `fairdml.metrics.spec` (pure Python) can be read without importing torch.
"""

from fairdml.utils._lazy import lazy_exports

_MODULES = {
    "fairdml.metrics.fairness": ("EmbeddingFairness", "flatten_report"),
    "fairdml.metrics.functional.neighbours": ("Neighbours",),
    "fairdml.metrics.functional.report": ("fairness_report",),
    "fairdml.metrics.settings": ("ReportSettings",),
    "fairdml.metrics.spec": ("MetricSpec", "metric_spec", "metric_specs", "register_metric", "unregister_metric"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
