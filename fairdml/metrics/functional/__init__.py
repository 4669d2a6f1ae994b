"""Pure finDML math: tensors in, numbers out, no state (torchmetrics' functional/ convention).

Exports load on first use, so a module that needs one function (the audit: the report) does not import every
other's dependencies (torchmetrics for the downstream rates, scikit-learn's probes) at start-up.
"""

# Eager, as before: the function shares its module's name, and a lazily loaded package attribute `knn` would be
# the submodule (Python binds it on the submodule's first import) rather than the function.
from fairdml.metrics.functional.knn import knn as knn
from fairdml.utils._lazy import lazy_exports

_MODULES = {
    "fairdml.metrics.functional._common": ("DEFAULT_MEMORY_BUDGET_BYTES", "FairnessMetricWarning"),
    "fairdml.metrics.functional.clustering": ("kmeans_nmi",),
    "fairdml.metrics.functional.decorrelation": ("attribute_cka", "fresh_decorrelation", "measure_decorrelation"),
    "fairdml.metrics.functional.downstream": ("downstream_report", "fairness_criteria", "group_rates"),
    "fairdml.metrics.functional.geometry": ("inter_class_alignment", "intra_class_alignment", "uniformity"),
    "fairdml.metrics.functional.groups": ("group_gaps",),
    "fairdml.metrics.functional.intervals": ("cluster_bootstrap_intervals",),
    "fairdml.metrics.functional.knn": ("iter_knn_chunks",),
    "fairdml.metrics.functional.leakage": ("LeakageResult", "attribute_leakage", "held_out_split"),
    "fairdml.metrics.functional.neighbours": ("Neighbours", "PerQueryMetric", "per_query_values"),
    "fairdml.metrics.functional.report": ("fairness_report", "metric_names"),
    "fairdml.metrics.functional.retrieval": (
        "RetrievalPerQuery", "average_precision_at_r_per_query", "mean_average_precision_at_r", "recall_at_k",
        "recall_at_k_per_query", "retrieval_per_query",
    ),
    "fairdml.metrics.functional.stages": ("collect_stages", "listen_stages", "stage"),
    "fairdml.metrics.spec": ("higher_is_better",),
}  # fmt: skip
_lazy_names, __getattr__, _ = lazy_exports(__name__, _MODULES)
__all__ = sorted([*_lazy_names, "knn"])


def __dir__() -> list[str]:
    return list(__all__)
