"""Recall@k and mAP@R per query, with the gallery = all samples except the query itself.

Per-query values (NaN for excluded queries) are returned so that overall and per-group figures are plain
means over the right queries: a query belongs to its own subgroup, the gallery is everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fairdml.metrics.functional._common import DEFAULT_MEMORY_BUDGET_BYTES, warn
from fairdml.metrics.functional.knn import iter_knn_chunks
from fairdml.metrics.functional.stages import KNN, staged


@dataclass
class RetrievalPerQuery:
    """Per-query retrieval figures; NaN where the query's class has no other sample (no positive)."""

    recall: dict[int, Tensor]  # requested k -> (N,) float64 in {0, 1} or NaN
    map_at_r: Tensor  # (N,) float64 or NaN
    has_positive: Tensor  # (N,) bool: False = excluded query
    effective_ks: dict[int, int]  # requested k -> k used (clamped to the gallery size)
    messages: list[str] = field(default_factory=list)


def _clamp_ks(ks: Sequence[int], gallery_size: int) -> tuple[dict[int, int], list[str]]:
    """Clamp each k to the gallery size (N - 1): Recall@k with k >= gallery is 1 for every valid query."""
    if any(int(k) < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {list(ks)}")
    effective, messages = {}, []
    for k in ks:
        effective[int(k)] = max(1, min(int(k), gallery_size))  # N = 1: no gallery, every query is excluded
        if int(k) > gallery_size:
            messages.append(
                f"recall@{k}: k exceeds the gallery ({gallery_size} samples); clamped to {effective[int(k)]}"
            )
    return effective, messages


@staged(KNN)
def retrieval_per_query(
    embeddings: Tensor,
    labels: Tensor,
    ks: Sequence[int] = (1, 2, 4, 8),
    *,
    distance: str = "euclidean",
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    knn_backend: str = "torch",
) -> RetrievalPerQuery:
    """Recall@k and mAP@R of every sample as a query against all other samples.

    Recall@k_i = 1[any of the k nearest neighbours of i has class y_i].
    mAP@R_i = (1/R_i) * sum_{j<=R_i} P@j * rel_j, R_i = #{other samples of class y_i} (Musgrave et al. 2020).
    Queries with R_i = 0 are excluded (NaN) and counted in `has_positive`. Both are computed chunk by chunk
    from a top-K search, K = max(max k, max R), so no (N, N) matrix is ever built. `knn_backend` "torch"
    (default), "auto" (faiss when installed, for float32 CPU inputs) or "faiss": see `knn`.
    """
    if len(ks) == 0:
        raise ValueError("ks must name at least one k, e.g. (1, 2, 4, 8)")
    n = embeddings.shape[0]
    device = embeddings.device
    labels = labels.to(device)
    _, class_of, class_counts = torch.unique(labels, return_inverse=True, return_counts=True)
    positives = class_counts[class_of] - 1  # R_i
    has_positive = positives > 0
    effective_ks, messages = _clamp_ks(ks, n - 1)
    recall = {k: torch.full((n,), float("nan"), dtype=torch.float64, device=device) for k in effective_ks}
    map_at_r = torch.full((n,), float("nan"), dtype=torch.float64, device=device)
    n_excluded = int((~has_positive).sum())
    if n_excluded:
        messages.append(
            f"{n_excluded} queries belong to classes with a single sample (no positive in the gallery); "
            "they are excluded from recall@k and map@r"
        )
    for message in messages:
        warn(message)
    valid = has_positive.nonzero().flatten()
    if valid.numel() == 0:
        return RetrievalPerQuery(recall, map_at_r, has_positive, effective_ks, messages)

    width = min(n - 1, max(max(effective_ks.values()), int(positives.max())))
    for queries, _, neighbours in iter_knn_chunks(
        embeddings,
        width,
        distance=distance,
        query_indices=valid,
        memory_budget_bytes=memory_budget_bytes,
        refine_distances=False,
        backend=knn_backend,
    ):
        matches = labels[neighbours] == labels[queries].unsqueeze(1)  # (c, K)
        for k, k_used in effective_ks.items():
            recall[k][queries] = matches[:, :k_used].any(dim=1).double()
        r = positives[queries].unsqueeze(1)  # (c, 1)
        rank = torch.arange(1, width + 1, device=device).unsqueeze(0)  # (1, K)
        hits = matches & (rank <= r)
        precision_at_rank = hits.cumsum(dim=1, dtype=torch.float64) / rank
        map_at_r[queries] = (precision_at_rank * hits).sum(dim=1) / r.squeeze(1)
    return RetrievalPerQuery(recall, map_at_r, has_positive, effective_ks, messages)


def recall_at_k(embeddings: Tensor, labels: Tensor, k: int, **kwargs) -> float:
    """Mean Recall@k over queries that have a positive (NaN if none)."""
    per_query = retrieval_per_query(embeddings, labels, ks=(k,), **kwargs).recall[k]
    return float(per_query.nanmean())


def mean_average_precision_at_r(embeddings: Tensor, labels: Tensor, **kwargs) -> float:
    """Mean mAP@R over queries with a positive (NaN if none), as PML's mean_average_precision_at_r."""
    return float(retrieval_per_query(embeddings, labels, ks=(1,), **kwargs).map_at_r.nanmean())
