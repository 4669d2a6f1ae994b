"""Pure finDML math: tensors in, numbers out, no state (torchmetrics' functional/ convention)."""

from fairdml.metrics.functional._common import DEFAULT_MEMORY_BUDGET_BYTES, FairnessMetricWarning
from fairdml.metrics.functional.clustering import kmeans_nmi
from fairdml.metrics.functional.decorrelation import attribute_cka, fresh_decorrelation, measure_decorrelation
from fairdml.metrics.functional.downstream import downstream_report, fairness_criteria, group_rates
from fairdml.metrics.functional.geometry import inter_class_alignment, intra_class_alignment, uniformity
from fairdml.metrics.functional.groups import group_gaps
from fairdml.metrics.functional.knn import iter_knn_chunks, knn
from fairdml.metrics.functional.leakage import LeakageResult, attribute_leakage, held_out_split
from fairdml.metrics.functional.report import fairness_report, metric_names
from fairdml.metrics.functional.retrieval import (
    RetrievalPerQuery,
    mean_average_precision_at_r,
    recall_at_k,
    retrieval_per_query,
)
from fairdml.metrics.spec import higher_is_better

__all__ = [
    "DEFAULT_MEMORY_BUDGET_BYTES",
    "FairnessMetricWarning",
    "LeakageResult",
    "RetrievalPerQuery",
    "attribute_cka",
    "attribute_leakage",
    "downstream_report",
    "fairness_criteria",
    "fairness_report",
    "fresh_decorrelation",
    "group_gaps",
    "group_rates",
    "held_out_split",
    "higher_is_better",
    "inter_class_alignment",
    "intra_class_alignment",
    "iter_knn_chunks",
    "kmeans_nmi",
    "knn",
    "mean_average_precision_at_r",
    "measure_decorrelation",
    "metric_names",
    "recall_at_k",
    "retrieval_per_query",
    "uniformity",
]
