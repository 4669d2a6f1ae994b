"""The built-in per-set metrics in the report's one calling convention (`MetricSpec.compute`).

`fn(embeddings (N, D) L2-normalised, labels (N,), settings) -> float | None`, called once on all samples and
once per group. Thin adapters rather than signature introspection: the math functions keep their own
keyword names (`backend`, `t`), and which setting feeds which argument is written here, not guessed. Each
runs as a report stage ("clustering" or "geometry", `stages`), so the audit can say where its time goes.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from fairdml.metrics.functional.clustering import kmeans_nmi, resolve_kmeans_backend
from fairdml.metrics.functional.geometry import inter_class_alignment, intra_class_alignment
from fairdml.metrics.functional.geometry import uniformity as _uniformity
from fairdml.metrics.functional.stages import CLUSTERING, GEOMETRY, staged

if TYPE_CHECKING:
    from fairdml.metrics.settings import ReportSettings


def resolve_report_kmeans(settings: ReportSettings, labels: Tensor) -> ReportSettings:
    """`settings` with kmeans_backend "auto" resolved once from the whole set (N x classes), so overall and
    every group are clustered by the same algorithm and report["settings"] names the one that ran."""
    if settings.kmeans_backend != "auto":
        return settings
    n_classes = int(torch.unique(labels).numel())
    return dataclasses.replace(settings, kmeans_backend=resolve_kmeans_backend("auto", labels.shape[0], n_classes))


@staged(CLUSTERING)
def nmi(embeddings: Tensor, labels: Tensor, settings: ReportSettings) -> float | None:
    """`kmeans_nmi` seeded by the report's seed, restarts and k-means backend."""
    return kmeans_nmi(embeddings, labels, seed=settings.seed, n_init=settings.n_init, backend=settings.kmeans_backend)


@staged(GEOMETRY)
def inter_alignment(embeddings: Tensor, labels: Tensor, settings: ReportSettings) -> float | None:
    """`inter_class_alignment` (needs no setting)."""
    return inter_class_alignment(embeddings, labels)


@staged(GEOMETRY)
def intra_alignment(embeddings: Tensor, labels: Tensor, settings: ReportSettings) -> float | None:
    """`intra_class_alignment` (needs no setting)."""
    return intra_class_alignment(embeddings, labels)


@staged(GEOMETRY)
def uniformity(embeddings: Tensor, labels: Tensor, settings: ReportSettings) -> float | None:
    """`uniformity` within the report's memory budget (labels unused: it is over all pairs)."""
    return _uniformity(embeddings, memory_budget_bytes=settings.memory_budget_bytes)
