"""Embedding-space geometry of finDML (Wang & Isola 2020 with alpha = 2, t = 2), per set of samples.

All three take L2-normalised embeddings (`fairness_report` normalises before calling them); the
alignments are exact for any vectors, uniformity's meaning assumes the unit sphere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fairdml.metrics.functional._common import DEFAULT_MEMORY_BUDGET_BYTES, compute_dtype, warn
from fairdml.metrics.functional.knn import pairwise_scores, rows_per_chunk

_SUM_CHUNK_ROWS = 65536  # rows converted to float64 at a time when summing
# Up to this many samples uniformity keeps its float64 log-sum-exp (seconds at most, and every report of that
# size keeps its exact earlier figures); above, the float32 kernel sum (`_uniformity_kernel_sum`), ~10x faster.
UNIFORMITY_EXACT_MAX_N = 10_000
_MAX_EXPONENT = 80.0  # exp(80) fits float32 (max ~ exp(88.7)): the kernel path needs t * max|z|^2 below it


def _pair_distance_sums(embeddings: Tensor, labels: Tensor) -> tuple[float, float, float, float]:
    """(sum, count) of ||z_i - z_j||^2 over ordered pairs i != j: same-class pairs and all pairs.

    For a set S: sum_{i != j in S} ||z_i - z_j||^2 = 2 |S| sum_i ||z_i||^2 - 2 ||sum_i z_i||^2, so per-class
    sums of vectors and of squared norms give every pair sum without an (N, N) matrix. Accumulated in
    float64: the difference of two O(N^2) terms would lose digits in float32.
    """
    _, class_of, counts = torch.unique(labels.to(embeddings.device), return_inverse=True, return_counts=True)
    n_classes, dim = counts.shape[0], embeddings.shape[1]
    vector_sums = torch.zeros((n_classes, dim), dtype=torch.float64, device=embeddings.device)
    sq_norm_sums = torch.zeros(n_classes, dtype=torch.float64, device=embeddings.device)
    for start in range(0, embeddings.shape[0], _SUM_CHUNK_ROWS):
        block = embeddings[start : start + _SUM_CHUNK_ROWS].double()
        index = class_of[start : start + _SUM_CHUNK_ROWS]
        vector_sums.index_add_(0, index, block)
        sq_norm_sums.index_add_(0, index, (block * block).sum(dim=1))
    counts64 = counts.double()
    per_class = 2 * counts64 * sq_norm_sums - 2 * (vector_sums * vector_sums).sum(dim=1)
    total_vector = vector_sums.sum(dim=0)
    n = counts64.sum()
    all_pairs = 2 * n * sq_norm_sums.sum() - 2 * (total_vector * total_vector).sum()
    same_count = (counts64 * (counts64 - 1)).sum()
    all_count = n * (n - 1)
    return float(per_class.sum()), float(same_count), float(all_pairs), float(all_count)


def intra_class_alignment(embeddings: Tensor, labels: Tensor) -> float | None:
    """Mean ||z_i - z_j||^2 over pairs i != j of the same class (lower = tighter classes).

    None (with a warning) when no class has two samples.
    """
    same_sum, same_count, _, _ = _pair_distance_sums(embeddings, labels)
    if same_count == 0:
        warn("intra_alignment is undefined: no class has two samples in this set; reported as None")
        return None
    return same_sum / same_count


def inter_class_alignment(embeddings: Tensor, labels: Tensor) -> float | None:
    """Mean ||z_i - z_j||^2 over pairs of different classes (a much smaller value = a collapsed group).

    Different-class pairs = all pairs minus same-class pairs. None (with a warning) for a single class.
    """
    same_sum, same_count, all_sum, all_count = _pair_distance_sums(embeddings, labels)
    if all_count - same_count == 0:
        warn("inter_alignment is undefined: this set has a single class; reported as None")
        return None
    return (all_sum - same_sum) / (all_count - same_count)


def uniformity(
    embeddings: Tensor,
    *,
    t: float = 2.0,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    method: str = "auto",
) -> float | None:
    """log mean_{i != j} exp(-t ||z_i - z_j||^2) (lower = spread more evenly over the sphere).

    Pairwise terms are unavoidable, so rows are chunked to the memory budget. `method` "exact": each chunk's
    log-sum-exp is taken in float64 and the chunks are combined with another log-sum-exp, stable for any t.
    "kernel": the pairs i < j only (the kernel is symmetric: half the matmul), exp in float32 straight from
    one fused matmul into a reused block, float32 row sums (torch's cascade summation) added in float64: 2
    passes over each block instead of ~8; agrees with "exact" to 1e-6 (tested; ~1e-9 seen). "auto": exact
    up to UNIFORMITY_EXACT_MAX_N samples, kernel above when float32 cannot overflow (t * max|z|^2 < 80, true on
    the unit sphere). None (with a warning) for fewer than two samples.
    """
    if method not in ("auto", "exact", "kernel"):
        raise ValueError(f"uniformity method must be 'auto', 'exact' or 'kernel', got {method!r}")
    embeddings = embeddings.to(compute_dtype(embeddings))
    n = embeddings.shape[0]
    if n < 2:
        warn(f"uniformity is undefined for a set of {n} sample(s); reported as None")
        return None
    sq_norms = (embeddings * embeddings).sum(dim=1)
    if method == "kernel" or (method == "auto" and uniformity_kernel_applies(embeddings, t, sq_norms)):
        total = _uniformity_kernel_sum(embeddings, sq_norms, t, memory_budget_bytes)
        return math.log(total) - math.log(n * (n - 1))
    item = torch.finfo(embeddings.dtype).bits // 8
    # per entry: the score block, its float64 copy and logsumexp's float64 temporary
    rows = rows_per_chunk(n, item + 2 * 8, memory_budget_bytes)
    chunk_lse = []
    for start in range(0, n, rows):
        chunk = torch.arange(start, min(start + rows, n), device=embeddings.device)
        log_kernel = pairwise_scores(embeddings[chunk], embeddings, sq_norms).double().mul_(-t)
        log_kernel[torch.arange(chunk.shape[0], device=embeddings.device), chunk] = float("-inf")
        chunk_lse.append(torch.logsumexp(log_kernel, dim=1))
    return float(torch.logsumexp(torch.cat(chunk_lse), dim=0)) - math.log(n * (n - 1))


def _uniformity_kernel_sum(embeddings: Tensor, sq_norms: Tensor, t: float, memory_budget_bytes: int) -> float:
    """sum_{i != j} exp(-t ||z_i - z_j||^2), all samples as one group of `uniformity_pair_sums`."""
    codes = torch.zeros(embeddings.shape[0], dtype=torch.long, device=embeddings.device)
    return 2 * float(uniformity_pair_sums(embeddings, codes, 1, t, memory_budget_bytes, sq_norms).sum())


def uniformity_kernel_applies(embeddings: Tensor, t: float = 2.0, sq_norms: Tensor | None = None) -> bool:
    """Whether `uniformity(method="auto")` takes the kernel path for this set (large, and float32-safe)."""
    if embeddings.shape[0] <= UNIFORMITY_EXACT_MAX_N:
        return False
    if sq_norms is None:
        sq_norms = (embeddings * embeddings).sum(dim=1)
    return t * float(sq_norms.max()) < _MAX_EXPONENT


def uniformity_pair_sums(
    embeddings: Tensor,
    codes: Tensor,
    n_groups: int,
    t: float = 2.0,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    sq_norms: Tensor | None = None,
) -> Tensor:
    """(G, G) float64: S[g, h] = sum over pairs i < j with i in group g and j in group h of exp(-t ||z_i - z_j||^2).

    One pass over the pairs gives the kernel sums of every union of groups (a set M's is the sum of S over
    M x M), so a report's uniformity overall, per group and per marginal group costs one N^2 pass, not one per
    set. Each chunk of rows meets the columns from its first row on, its own (chunk, chunk) corner cut to j > i.
    exp(-t d_ij^2) = exp(-t |z_i|^2) * exp(2t <z_i, z_j> - t |z_j|^2): the second factor is one addmm into a
    reused float32 block (never converted to float64: that copy alone cost as much as the matmul), its columns
    summed per group by a matmul with the group indicator; the row factor multiplies each row's sums. No
    max-subtraction is needed: the exponent is at most t |z_i|^2, which the caller bounds below float32's
    overflow (`uniformity_kernel_applies`).
    """
    n = embeddings.shape[0]
    embeddings = embeddings.to(compute_dtype(embeddings))
    if sq_norms is None:
        sq_norms = (embeddings * embeddings).sum(dim=1)
    item = torch.finfo(embeddings.dtype).bits // 8
    rows = rows_per_chunk(n, item, memory_budget_bytes)  # the block itself; its per-group sums are O(rows * G)
    bias = sq_norms.mul(-t)
    member = torch.nn.functional.one_hot(codes, n_groups).to(embeddings.dtype)  # (N, G)
    sums = torch.zeros(n_groups, n_groups, dtype=torch.float64, device=embeddings.device)
    block = embeddings.new_empty(min(rows, n) * n)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        size, width = stop - start, n - start
        kernel = block[: size * width].view(size, width)
        torch.addmm(bias[start:], embeddings[start:stop], embeddings[start:].T, alpha=2 * t, out=kernel)
        corner = torch.ones(size, size, dtype=torch.bool, device=embeddings.device).tril_()  # j <= i
        kernel[:, :size].masked_fill_(corner, float("-inf"))
        by_column_group = (kernel.exp_() @ member[start:]).double() * bias[start:stop].double().exp()[:, None]
        sums += member[start:stop].double().T @ by_column_group
    return sums


def uniformity_of_union(pair_sums: Tensor, counts: Tensor, members: list[int]) -> float | None:
    """Uniformity of the union of groups `members`, from `uniformity_pair_sums` and the groups' sizes; None
    for fewer than two samples (the caller warns, as `uniformity` does)."""
    n = int(counts[members].sum())
    if n < 2:
        return None
    total = float(pair_sums[members][:, members].sum())
    return math.log(2 * total) - math.log(n * (n - 1))
