"""finDML fairness metrics: pure functions in `functional`, torchmetrics wrappers here."""

from fairdml.metrics.fairness import EmbeddingFairness, flatten_report
from fairdml.metrics.functional import fairness_report

__all__ = ["EmbeddingFairness", "fairness_report", "flatten_report"]
