"""finDML fairness metrics: pure functions in `functional`, torchmetrics wrappers here, one `MetricSpec` each."""

from fairdml.metrics.fairness import EmbeddingFairness, flatten_report
from fairdml.metrics.functional import fairness_report
from fairdml.metrics.settings import ReportSettings
from fairdml.metrics.spec import MetricSpec, metric_spec, metric_specs, register_metric, unregister_metric

__all__ = [
    "EmbeddingFairness",
    "MetricSpec",
    "ReportSettings",
    "fairness_report",
    "flatten_report",
    "metric_spec",
    "metric_specs",
    "register_metric",
    "unregister_metric",
]
