"""Exact k-nearest-neighbour search over embeddings, chunked over queries to a memory budget.

Hand-written rather than faiss (PML's backend): faiss runs out of memory on large sets, takes every GPU
and caps k at 2048 there. Here one chunk of queries is scored against the whole gallery with a matmul and
reduced with `torch.topk`, so memory is O(chunk * N), never O(N^2), on CPU and GPU alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fairdml.metrics.functional._common import DEFAULT_MEMORY_BUDGET_BYTES, compute_dtype

DISTANCES = ("euclidean", "inner_product", "cosine")


def rows_per_chunk(n_columns: int, bytes_per_row_entry: int, memory_budget_bytes: int) -> int:
    """How many query rows of `n_columns` entries (each `bytes_per_row_entry` bytes) fit the budget (>= 1)."""
    if memory_budget_bytes <= 0:
        raise ValueError(f"memory_budget_bytes must be positive, got {memory_budget_bytes}")
    return max(1, memory_budget_bytes // max(1, n_columns * bytes_per_row_entry))


def knn_chunk_rows(n_gallery: int, k: int, dim: int, dtype: torch.dtype, memory_budget_bytes: int) -> int:
    """Query rows per chunk: the (rows, N) score block plus topk's workspace, the (rows, k) outputs with
    the per-row work callers do on them (labels, masks, float64 cumsums), and (rows, k, D) when refining."""
    item = torch.finfo(dtype).bits // 8
    bytes_per_row = 2 * n_gallery * item + k * (item + 8 + 32) + k * dim * item
    return rows_per_chunk(1, bytes_per_row, memory_budget_bytes)


def pairwise_scores(queries: Tensor, gallery: Tensor, gallery_sq_norms: Tensor | None) -> Tensor:
    """(Q, G) squared Euclidean distances if `gallery_sq_norms` is given, else inner products.

    d^2 = |q|^2 + |g|^2 - 2<q, g> (one matmul); clamped at 0 because rounding can make it slightly negative.
    """
    scores = queries @ gallery.T
    if gallery_sq_norms is None:
        return scores
    query_sq_norms = (queries * queries).sum(dim=1, keepdim=True)
    return scores.mul_(-2).add_(gallery_sq_norms).add_(query_sq_norms).clamp_(min=0)


def nearness_scores(queries: Tensor, gallery: Tensor, gallery_sq_norms: Tensor | None) -> Tensor:
    """(Q, G) search scores, higher = nearer: <q, g>, or 2<q, g> - |g|^2 = |q|^2 - d^2 if norms are given.

    The per-query |q|^2 does not change a row's order, so the Euclidean score is one fused matmul (addmm)
    with no further pass over the (Q, G) block; distances are recovered for the k winners only.
    """
    if gallery_sq_norms is None:
        return queries @ gallery.T
    return torch.addmm(gallery_sq_norms, queries, gallery.T, beta=-1, alpha=2)


def iter_knn_chunks(
    embeddings: Tensor,
    k: int,
    *,
    distance: str = "euclidean",
    query_indices: Tensor | None = None,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    refine_distances: bool = True,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield (query_indices (c,), values (c, k), neighbour_indices (c, k)) chunk by chunk.

    The gallery is every row of `embeddings`; each query is excluded from its own neighbours by index (its
    score is set to the worst value before top-k), so exact duplicates of the query are still found.
    Values are Euclidean distances sorted ascending, or similarities (inner product / cosine) sorted
    descending. float16/bfloat16 inputs are computed in float32.

    The search uses d^2 = |q|^2 + |g|^2 - 2<q, g>, which loses digits near d = 0 (an exact duplicate can show
    d ~ 1e-3 in float32); with `refine_distances` the k returned distances are recomputed as ||q - g||.
    Callers that only need the neighbour order (retrieval) turn it off.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    x = embeddings.to(compute_dtype(embeddings))
    n = x.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be between 1 and N - 1 = {n - 1} (the query itself is excluded), got {k}")
    if distance == "cosine":
        x = F.normalize(x, dim=1)
    euclidean = distance == "euclidean"
    sq_norms = (x * x).sum(dim=1) if euclidean else None
    queries = torch.arange(n, device=x.device) if query_indices is None else query_indices.to(x.device).long()
    refine = euclidean and refine_distances
    rows = knn_chunk_rows(n, k, x.shape[1] if refine else 0, x.dtype, memory_budget_bytes)
    for start in range(0, queries.shape[0], rows):
        chunk = queries[start : start + rows]
        scores = nearness_scores(x[chunk], x, sq_norms)
        scores[torch.arange(chunk.shape[0], device=x.device), chunk] = float("-inf")  # the query itself
        values, neighbours = torch.topk(scores, k, dim=1, largest=True, sorted=True)
        if refine:  # exact distances can reorder near-ties inside the top k: sort again
            values, order = (x[chunk].unsqueeze(1) - x[neighbours]).norm(dim=2).sort(dim=1, stable=True)
            neighbours = neighbours.gather(1, order)
        elif euclidean:  # d^2 = |q|^2 - score, clamped: rounding can make it slightly negative
            values = (sq_norms[chunk].unsqueeze(1) - values).clamp_(min=0).sqrt_()
        yield chunk, values, neighbours


def knn(embeddings: Tensor, k: int, **options: Any) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours of each query among all other rows: (values (Q, k), indices (Q, k)).

    `options` are `iter_knn_chunks`' keywords (distance, query_indices, memory_budget_bytes, refine_distances);
    this concatenates its chunks (the output itself is O(Q * k)).
    """
    chunks = list(iter_knn_chunks(embeddings, k, **options))
    if not chunks:
        empty = embeddings.new_empty((0, k), dtype=compute_dtype(embeddings))
        return empty, torch.empty((0, k), dtype=torch.long, device=embeddings.device)
    return torch.cat([c[1] for c in chunks]), torch.cat([c[2] for c in chunks])
