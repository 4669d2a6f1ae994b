"""Per-query metrics on one shared kNN search: each query against everyone else (the paper's retrieval setting).

As pytorch-metric-learning's `AccuracyCalculator` hands its `requires_knn` metrics one kNN result, the report
searches the nearest neighbours once and calls every per-query metric (recall@k, mAP@R, any registered one,
`MetricSpec.compute`) on it. The search runs chunk by chunk over queries (`iter_knn_chunks`), and each metric
is called once per chunk, so memory stays O(chunk * K) as before: no (N, K) or (N, N) block is ever held.

A metric is `fn(neighbours: Neighbours, settings: ReportSettings) -> Tensor (c,)`, one value per query of the
chunk. Queries whose class has no other sample (no positive in the gallery) are never passed: their value is
NaN in every per-query metric, and the report's means and `excluded` counts leave them out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from fairdml.metrics.functional._common import warn
from fairdml.metrics.functional.knn import iter_knn_chunks
from fairdml.metrics.functional.stages import KNN, staged

if TYPE_CHECKING:
    from fairdml.metrics.settings import ReportSettings


@dataclass(frozen=True)
class Neighbours:
    """The nearest neighbours of a chunk of c queries, nearest first, the query itself excluded.

    A metric with a k (`MetricSpec.k`) sees its k nearest (K = k, clamped to the gallery); a metric without one
    (mAP@R) sees the whole search, K >= every query's `positives` (R; K <= N - 1).
    """

    queries: Tensor  # (c,) indices of the queries among the report's samples
    query_labels: Tensor  # (c,)
    neighbour_labels: Tensor  # (c, K) class of each neighbour, nearest first
    matches: Tensor  # (c, K) bool: the neighbour has the query's class
    positives: Tensor  # (c,) R: the other samples of the query's class in the gallery (>= 1)

    def nearest(self, k: int) -> Neighbours:
        """The k nearest of each query (views, no copy)."""
        labels, matches = self.neighbour_labels[:, :k], self.matches[:, :k]
        return Neighbours(self.queries, self.query_labels, labels, matches, self.positives)


PerQueryFunction = Callable[[Neighbours, "ReportSettings"], Tensor]


@dataclass(frozen=True)
class PerQueryMetric:
    """A per-query metric to compute: its report name, its function, and its k (None: up to each query's R)."""

    name: str
    function: PerQueryFunction
    k: int | None = None


@dataclass
class PerQueryValues:
    """Every per-query metric's values, NaN where the query has no positive (excluded)."""

    values: dict[str, Tensor]  # name -> (N,) float64
    has_positive: Tensor  # (N,) bool: False = excluded query
    effective_k: dict[str, int]  # name -> the k used (clamped to the gallery), for metrics with a k
    messages: list[str] = field(default_factory=list)


def metrics_phrase(names: Sequence[str]) -> str:
    """The metrics as one phrase, a family of `<metric>@<number>` once as `<metric>@k`.

    Example:
        >>> metrics_phrase(["recall@1", "recall@4", "map@r"]), metrics_phrase(["recall@1", "map@r", "precision@5"])
        ('recall@k and map@r', 'recall@k, map@r and precision@k')
    """
    families = list(dict.fromkeys(re.sub(r"@\d+$", "@k", name) for name in names))
    return families[0] if len(families) == 1 else f"{', '.join(families[:-1])} and {families[-1]}"


def clamp_k(metrics: Sequence[PerQueryMetric], gallery_size: int) -> tuple[dict[str, int], list[str]]:
    """Each metric's k clamped to the gallery (N - 1): recall@k with k >= gallery is 1 for every valid query."""
    effective, messages = {}, []
    for metric in metrics:
        if metric.k is None:
            continue
        if metric.k < 1:
            raise ValueError(f"metric {metric.name!r}: k must be >= 1, got {metric.k}")
        effective[metric.name] = max(1, min(metric.k, gallery_size))  # N = 1: no gallery, every query is excluded
        if metric.k > gallery_size:
            messages.append(
                f"{metric.name}: k exceeds the gallery ({gallery_size} samples); clamped to {effective[metric.name]}"
            )
    return effective, messages


@staged(KNN)
def per_query_values(
    embeddings: Tensor, labels: Tensor, metrics: Sequence[PerQueryMetric], settings: ReportSettings
) -> PerQueryValues:
    """Every metric of `metrics` for every sample as a query against all other samples, from one kNN search.

    The search width is K = max(each metric's clamped k, and max R when a metric has no k), as wide as the
    widest metric needs; `settings` gives the distance, the memory budget and the kNN backend, and reaches
    each metric.
    """
    if not metrics:
        raise ValueError("per_query_values needs at least one metric")
    n = embeddings.shape[0]
    device = embeddings.device
    labels = labels.to(device)
    _, class_of, class_counts = torch.unique(labels, return_inverse=True, return_counts=True)
    positives = class_counts[class_of] - 1  # R_i
    has_positive = positives > 0
    effective_k, messages = clamp_k(metrics, n - 1)
    values = {metric.name: torch.full((n,), float("nan"), dtype=torch.float64, device=device) for metric in metrics}
    n_excluded = int((~has_positive).sum())
    if n_excluded:
        messages.append(
            f"{n_excluded} queries belong to classes with a single sample (no positive in the gallery); "
            f"they are excluded from {metrics_phrase([metric.name for metric in metrics])}"
        )
    for message in messages:
        warn(message)
    valid = has_positive.nonzero().flatten()
    if valid.numel() == 0:
        return PerQueryValues(values, has_positive, effective_k, messages)

    wants_r = any(metric.k is None for metric in metrics)
    width = min(n - 1, max([*effective_k.values(), *([int(positives.max())] if wants_r else [])]))
    for queries, _, neighbour_indices in iter_knn_chunks(
        embeddings,
        width,
        distance=settings.distance,
        query_indices=valid,
        memory_budget_bytes=settings.memory_budget_bytes,
        refine_distances=False,  # only the order matters here
        backend=settings.knn_backend,
    ):
        neighbour_labels = labels[neighbour_indices]
        query_labels = labels[queries]
        matches = neighbour_labels == query_labels.unsqueeze(1)  # (c, K)
        shared = Neighbours(queries, query_labels, neighbour_labels, matches, positives[queries])
        for metric in metrics:
            seen = shared if metric.k is None else shared.nearest(effective_k[metric.name])
            values[metric.name][queries] = _checked(metric.name, metric.function(seen, settings), len(queries))
    return PerQueryValues(values, has_positive, effective_k, messages)


def _checked(name: str, result: Tensor, n_queries: int) -> Tensor:
    """A metric's (c,) result, or an error naming the metric (a wrong shape would broadcast silently)."""
    if not isinstance(result, Tensor) or result.shape != (n_queries,):
        shape = tuple(result.shape) if isinstance(result, Tensor) else type(result).__name__
        raise ValueError(f"metric {name!r}: its function must return a ({n_queries},) tensor, one value per query; "
                         f"got {shape}")  # fmt: skip
    return result.to(torch.float64)
