"""Recall@k and mAP@R per query, with the gallery = all samples except the query itself.

Both are per-query metrics in the report's calling convention (`neighbours`, `MetricSpec.compute`): each gets
the shared kNN result and returns one value per query, so overall and per-group figures are plain means over
the right queries: a query belongs to its own subgroup, the gallery is everyone. `retrieval_per_query` runs
both on their own, outside a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fairdml.metrics.functional._common import DEFAULT_MEMORY_BUDGET_BYTES
from fairdml.metrics.functional.neighbours import Neighbours, PerQueryMetric, per_query_values
from fairdml.metrics.settings import ReportSettings


def recall_at_k_per_query(neighbours: Neighbours, settings: ReportSettings) -> Tensor:
    """Recall@k_i = 1[any of the k nearest neighbours of i has class y_i], k = the spec's (neighbours' width).

    Example:
        >>> from fairdml.metrics.functional.neighbours import Neighbours
        >>> labels = torch.tensor([[1, 0], [2, 2]])  # two queries' 2 nearest neighbours' classes
        >>> hits = Neighbours(torch.arange(2), torch.tensor([0, 1]), labels, labels == torch.tensor([[0], [1]]),
        ...                   torch.tensor([1, 3]))
        >>> recall_at_k_per_query(hits, ReportSettings()).tolist()
        [1.0, 0.0]
    """
    return neighbours.matches.any(dim=1).double()


def average_precision_at_r_per_query(neighbours: Neighbours, settings: ReportSettings) -> Tensor:
    """AP@R_i = (1/R_i) * sum_{j<=R_i} P@j * rel_j, R_i = #{other samples of class y_i} (Musgrave et al. 2020);
    its mean is mAP@R. Reads the first R_i neighbours of each query (a spec with k None gets at least max R)."""
    matches, positives = neighbours.matches, neighbours.positives
    r = positives.unsqueeze(1)  # (c, 1)
    rank = torch.arange(1, matches.shape[1] + 1, device=matches.device).unsqueeze(0)  # (1, K)
    hits = matches & (rank <= r)
    precision_at_rank = hits.cumsum(dim=1, dtype=torch.float64) / rank
    return (precision_at_rank * hits).sum(dim=1) / positives


@dataclass
class RetrievalPerQuery:
    """Per-query retrieval figures; NaN where the query's class has no other sample (no positive)."""

    recall: dict[int, Tensor]  # requested k -> (N,) float64 in {0, 1} or NaN
    map_at_r: Tensor  # (N,) float64 or NaN
    has_positive: Tensor  # (N,) bool: False = excluded query
    effective_ks: dict[int, int]  # requested k -> k used (clamped to the gallery size)
    messages: list[str] = field(default_factory=list)


def retrieval_per_query(
    embeddings: Tensor,
    labels: Tensor,
    ks: Sequence[int] = (1, 2, 4, 8),
    *,
    distance: str = "euclidean",
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    knn_backend: str = "torch",
) -> RetrievalPerQuery:
    """Recall@k and mAP@R of every sample as a query against all other samples, outside a report.

    Queries with R_i = 0 are excluded (NaN) and counted in `has_positive`. Both are computed chunk by chunk
    from a top-K search, K = max(max k, max R), so no (N, N) matrix is ever built. `knn_backend` "torch"
    (default), "auto" (faiss when installed, for float32 CPU inputs) or "faiss": see `knn`.
    """
    settings = ReportSettings(ks=tuple(ks), distance=distance, memory_budget_bytes=memory_budget_bytes,
                              knn_backend=knn_backend)  # fmt: skip
    recall = [PerQueryMetric(f"recall@{k}", recall_at_k_per_query, k) for k in settings.ks]
    result = per_query_values(
        embeddings, labels, [*recall, PerQueryMetric("map@r", average_precision_at_r_per_query)], settings
    )
    return RetrievalPerQuery(
        recall={k: result.values[f"recall@{k}"] for k in settings.ks},
        map_at_r=result.values["map@r"],
        has_positive=result.has_positive,
        effective_ks={k: result.effective_k[f"recall@{k}"] for k in settings.ks},
        messages=result.messages,
    )


def recall_at_k(embeddings: Tensor, labels: Tensor, k: int, **kwargs) -> float:
    """Mean Recall@k over queries that have a positive (NaN if none)."""
    per_query = retrieval_per_query(embeddings, labels, ks=(k,), **kwargs).recall[k]
    return float(per_query.nanmean())


def mean_average_precision_at_r(embeddings: Tensor, labels: Tensor, **kwargs) -> float:
    """Mean mAP@R over queries with a positive (NaN if none), as PML's mean_average_precision_at_r."""
    return float(retrieval_per_query(embeddings, labels, ks=(1,), **kwargs).map_at_r.nanmean())
