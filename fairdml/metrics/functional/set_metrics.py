"""The built-in per-set metrics in the report's one calling convention (`MetricSpec.compute`).

`fn(embeddings (N, D) L2-normalised, labels (N,), settings) -> float | None`, called once on all samples and
once per group. Thin adapters rather than signature introspection: the math functions keep their own
keyword names (`backend`, `t`), and which setting feeds which argument is written here, not guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from fairdml.metrics.functional.clustering import kmeans_nmi
from fairdml.metrics.functional.geometry import inter_class_alignment, intra_class_alignment
from fairdml.metrics.functional.geometry import uniformity as _uniformity

if TYPE_CHECKING:
    from fairdml.metrics.settings import ReportSettings


def nmi(embeddings: Tensor, labels: Tensor, settings: ReportSettings) -> float | None:
    """`kmeans_nmi` seeded by the report's seed, restarts and k-means backend."""
    return kmeans_nmi(embeddings, labels, seed=settings.seed, n_init=settings.n_init, backend=settings.kmeans_backend)


def inter_alignment(embeddings: Tensor, labels: Tensor, settings: ReportSettings) -> float | None:
    """`inter_class_alignment` (needs no setting)."""
    return inter_class_alignment(embeddings, labels)


def intra_alignment(embeddings: Tensor, labels: Tensor, settings: ReportSettings) -> float | None:
    """`intra_class_alignment` (needs no setting)."""
    return intra_class_alignment(embeddings, labels)


def uniformity(embeddings: Tensor, labels: Tensor, settings: ReportSettings) -> float | None:
    """`uniformity` within the report's memory budget (labels unused: it is over all pairs)."""
    return _uniformity(embeddings, memory_budget_bytes=settings.memory_budget_bytes)
