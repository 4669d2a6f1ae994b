"""Exact k-nearest-neighbour search over embeddings, chunked over queries to a memory budget.

Two exact backends, chosen by `backend` ("torch", the default; "auto": faiss for float32 CPU tensors when
faiss is installed, else torch; "faiss"). torch: one chunk of queries is scored against the whole gallery with
a matmul and reduced with `torch.topk`, so memory is O(chunk * N), never O(N^2), on CPU and GPU alike. faiss
(CPU `IndexFlatL2` / `IndexFlatIP`, exhaustive, PML's backend): keeps the k best per query in a heap while it
scans blocks of the gallery, so it never holds a (chunk, N) block and takes less CPU (1.4x less at 20k, 2.2x
at 100k, D = 128); queries go in chunks too, so its (chunk, k) outputs stay within the budget at any N. Both
select the same neighbours: only the order of exactly (or to float32 rounding) equidistant ones may differ
(tests/metrics/test_knn_backends.py). Such a near-tie does move figures: recall@k was identical at 20k, map@r
differed on 12 of 20k queries (mean by 1.6e-7), and on the default run's 1.2k test samples one flip moved
map@r by 3.7e-6. So torch stays the default (reference reports reproduce byte for byte) and the audit opts in
with "auto".
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fairdml.metrics.functional._common import DEFAULT_MEMORY_BUDGET_BYTES, compute_dtype, l2_normalise

DISTANCES = ("euclidean", "inner_product", "cosine")
KNN_BACKENDS = ("auto", "torch", "faiss")


@functools.cache
def faiss_available() -> bool:
    """Whether faiss imports (an optional dependency: the dev extra installs faiss-cpu)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def use_faiss(embeddings: Tensor, backend: str) -> bool:
    """Whether `backend` means faiss for these embeddings: "auto" takes it for float32 CPU tensors when installed
    (float64 stays on torch, which keeps its precision; GPU tensors stay on the GPU)."""
    if backend not in KNN_BACKENDS:
        raise ValueError(f"knn backend must be one of {KNN_BACKENDS}, got {backend!r}")
    if backend == "torch":
        return False
    fits = embeddings.device.type == "cpu" and embeddings.dtype == torch.float32
    if backend == "faiss" and not (fits and faiss_available()):
        why = "it needs float32 CPU tensors" if faiss_available() else "faiss is not installed (pip install faiss-cpu)"
        raise ValueError(f"knn backend 'faiss' cannot run here: {why}; use backend='auto' or 'torch'")
    return fits and faiss_available()


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


def faiss_chunk_rows(k: int, dim: int, dtype: torch.dtype, memory_budget_bytes: int) -> int:
    """Query rows per faiss search: its (rows, k + 1) scores and ids, the per-row work callers do on the k
    outputs (as `knn_chunk_rows`) and (rows, k, D) when refining. faiss's own scan workspace is a fixed
    (4096, 1024) float block, whatever N."""
    item = torch.finfo(dtype).bits // 8
    bytes_per_row = (k + 1) * (4 + 8) * 2 + k * (item + 8 + 32) + k * dim * item
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
    backend: str = "torch",
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield (query_indices (c,), values (c, k), neighbour_indices (c, k)) chunk by chunk.

    The gallery is every row of `embeddings`; each query is excluded from its own neighbours by index (its
    score is set to the worst value before top-k), so exact duplicates of the query are still found.
    Values are Euclidean distances sorted ascending, or similarities (inner product / cosine) sorted
    descending. float16/bfloat16 inputs are computed in float32.

    The search uses d^2 = |q|^2 + |g|^2 - 2<q, g>, which loses digits near d = 0 (an exact duplicate can show
    d ~ 1e-3 in float32); with `refine_distances` the k returned distances are recomputed as ||q - g||.
    Callers that only need the neighbour order (retrieval) turn it off. `backend`: see the module docstring.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    x = embeddings.to(compute_dtype(embeddings))
    n = x.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be between 1 and N - 1 = {n - 1} (the query itself is excluded), got {k}")
    if distance == "cosine":
        x = l2_normalise(x)
    euclidean = distance == "euclidean"
    sq_norms = (x * x).sum(dim=1) if euclidean else None
    queries = torch.arange(n, device=x.device) if query_indices is None else query_indices.to(x.device).long()
    refine = euclidean and refine_distances
    if use_faiss(x, backend):
        yield from _iter_faiss_chunks(x, k, euclidean, queries, refine, memory_budget_bytes)
        return
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


def _iter_faiss_chunks(
    x: Tensor, k: int, euclidean: bool, queries: Tensor, refine: bool, memory_budget_bytes: int
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """`iter_knn_chunks` on faiss: search k + 1 and drop the query itself by index, as the torch path does."""
    import faiss

    data = np.ascontiguousarray(x.detach().numpy())
    index = faiss.IndexFlatL2(data.shape[1]) if euclidean else faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    width = k + 1  # k <= N - 1 was checked, so the gallery has k + 1 rows
    rows = faiss_chunk_rows(k, data.shape[1] if refine else 0, x.dtype, memory_budget_bytes)
    for start in range(0, queries.shape[0], rows):
        chunk = queries[start : start + rows]
        scores, found = (torch.from_numpy(a) for a in index.search(data[chunk.numpy()], width))
        is_self = found == chunk.unsqueeze(1)
        # more than k exact duplicates can push the query out of its own k + 1: then drop the last instead
        is_self[~is_self.any(dim=1), -1] = True
        neighbours, values = found[~is_self].view(-1, k), scores[~is_self].view(-1, k)
        if refine:  # faiss's squared distances lose digits near 0 as the torch path's do: recompute and sort
            values, order = (x[chunk].unsqueeze(1) - x[neighbours]).norm(dim=2).sort(dim=1, stable=True)
            neighbours = neighbours.gather(1, order)
        elif euclidean:
            values = values.clamp_(min=0).sqrt_()
        yield chunk, values, neighbours


def knn(embeddings: Tensor, k: int, **options: Any) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours of each query among all other rows: (values (Q, k), indices (Q, k)).

    `options` are `iter_knn_chunks`' keywords (distance, query_indices, memory_budget_bytes, refine_distances,
    backend);
    this concatenates its chunks (the output itself is O(Q * k)).
    """
    chunks = list(iter_knn_chunks(embeddings, k, **options))
    if not chunks:
        empty = embeddings.new_empty((0, k), dtype=compute_dtype(embeddings))
        return empty, torch.empty((0, k), dtype=torch.long, device=embeddings.device)
    return torch.cat([c[1] for c in chunks]), torch.cat([c[2] for c in chunks])
