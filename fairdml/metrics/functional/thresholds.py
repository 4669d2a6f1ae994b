"""Verification error rates per subgroup against the decision threshold: FMR, FNMR, ROC/DET, equal FMR.

Why: an embedding model is often deployed as a verifier (two images "match" when their cosine similarity is
at least a threshold), and one global threshold gives each subgroup its own error rates. These functions
sample genuine and impostor pairs *within* each group, score them, and count errors per group as integers,
so the model card's threshold slider shows exactly the numbers Python computes at every grid threshold.

Definitions, for a group g and a threshold t (similarities s):
  FMR_g(t)  = #{impostor pairs of g with s >= t} / #{impostor pairs of g}    (false match rate)
  FNMR_g(t) = #{genuine pairs of g with s < t} / #{genuine pairs of g}       (false non-match rate)
A genuine pair has two samples of the same class, an impostor pair two of different classes; both samples
of a pair are in the same group.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
_ENUMERATE_LIMIT = 2_000_000  # enumerate all pairs of a group when it has at most this many


def _to_numpy(array: Any) -> np.ndarray:
    """Accept numpy arrays, lists and torch tensors (on any device) alike."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


@dataclass(frozen=True)
class PairSample:
    """Pairs of sample indices, each pair within one group. Arrays are (P,)."""

    first: np.ndarray  # int64 index of the pair's first sample (first < second)
    second: np.ndarray  # int64 index of the pair's second sample
    genuine: np.ndarray  # bool: same class
    group: np.ndarray  # int64 code into group_names
    group_names: tuple[str, ...]
    available_genuine: np.ndarray  # (G,) int64: genuine pairs each group has before the cap
    available_impostor: np.ndarray  # (G,) int64: impostor pairs each group has before the cap

    def __len__(self) -> int:
        return len(self.first)


def _group_seed(seed: int, name: str) -> np.random.Generator:
    """One generator per group, keyed by its name: adding a group does not change another group's pairs."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def _draw_distinct(draw: Any, wanted: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Call `draw(rng, size) -> (a, b, keep)` until `wanted` distinct pairs are kept; first draws win.

    Keeping the first occurrence of each pair over i.i.d. uniform draws is uniform sampling without
    replacement, and it is reproducible because batches are drawn in a fixed order from `rng`.
    """
    codes = np.empty(0, dtype=np.int64)
    while True:
        a, b, keep = draw(rng, max(2 * wanted, 1024))
        low, high = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
        codes = np.concatenate([codes, low * n + high])
        unique, first_seen = np.unique(codes, return_index=True)
        if len(unique) >= wanted:
            order = np.sort(first_seen)[:wanted]
            chosen = np.sort(codes[order])
            return chosen // n, chosen % n


def _two_distinct(rng: np.random.Generator, n: np.ndarray | int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two different positions, uniform, in [0, n)."""
    a = rng.integers(0, n, size=size)
    b = rng.integers(0, np.asarray(n) - 1, size=size)
    return a, b + (b >= a)


def _group_pairs(
    labels: np.ndarray, cap: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Pairs (a < b) of positions within one group: up to `cap` genuine and up to `cap` impostor ones.

    Returns a, b, genuine flags, and the numbers of genuine and impostor pairs available before the cap.
    """
    n = len(labels)
    _, class_of, class_sizes = np.unique(labels, return_inverse=True, return_counts=True)
    n_genuine = int((class_sizes * (class_sizes - 1) // 2).sum())
    n_impostor = n * (n - 1) // 2 - n_genuine
    parts = []
    if n * (n - 1) // 2 <= _ENUMERATE_LIMIT:
        a, b = np.triu_indices(n, k=1)
        same = labels[a] == labels[b]
        for is_genuine in (True, False):
            keep = np.flatnonzero(same == is_genuine)
            if len(keep) > cap:
                keep = np.sort(rng.choice(keep, size=cap, replace=False))
            parts.append((a[keep], b[keep], np.full(len(keep), is_genuine)))
    else:
        members = np.argsort(class_of, kind="stable")
        starts = np.concatenate([[0], np.cumsum(class_sizes)[:-1]])
        pair_weights = class_sizes * (class_sizes - 1) / 2.0

        def draw_genuine(gen: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
            cls = gen.choice(len(class_sizes), size=size, p=pair_weights / pair_weights.sum())
            i, j = _two_distinct(gen, class_sizes[cls], size)
            return members[starts[cls] + i], members[starts[cls] + j], np.ones(size, dtype=bool)

        def draw_impostor(gen: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
            i, j = _two_distinct(gen, n, size)
            return i, j, labels[i] != labels[j]

        kinds = ((True, n_genuine, draw_genuine), (False, n_impostor, draw_impostor))
        for is_genuine, available, draw in kinds:
            if available == 0:
                parts.append((np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool)))
                continue
            a, b = _draw_distinct(draw, min(cap, available), n, rng)
            parts.append((a, b, np.full(len(a), is_genuine)))
    a = np.concatenate([p[0] for p in parts]).astype(np.int64)
    b = np.concatenate([p[1] for p in parts]).astype(np.int64)
    genuine = np.concatenate([p[2] for p in parts]).astype(bool)
    return a, b, genuine, n_genuine, n_impostor


def sample_pairs(labels: Any, groups: Any, max_pairs_per_group: int = 5000, seed: int = 0) -> PairSample:
    """Genuine and impostor pairs stratified by group, reproducible with `seed`.

    Within each group, all pairs of a kind are kept when there are at most `max_pairs_per_group`, otherwise
    that many are drawn uniformly without replacement (the cap applies to genuine and impostor pairs
    separately, so a small group keeps all its genuine pairs). Groups are named by `str(value)`, sorted.
    """
    if max_pairs_per_group < 1:
        raise ValueError(f"max_pairs_per_group must be >= 1, got {max_pairs_per_group}")
    labels, groups = _to_numpy(labels), _to_numpy(groups).astype(str)
    if labels.shape != groups.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and groups {groups.shape} must be equal 1-D shapes")
    names, group_of = np.unique(groups, return_inverse=True)
    firsts, seconds, flags, codes, available = [], [], [], [], []
    for code, name in enumerate(names):
        members = np.flatnonzero(group_of == code)
        rng = _group_seed(seed, name)
        a, b, genuine, n_gen, n_imp = _group_pairs(labels[members], max_pairs_per_group, rng)
        firsts.append(members[a])
        seconds.append(members[b])
        flags.append(genuine)
        codes.append(np.full(len(a), code, dtype=np.int64))
        available.append((n_gen, n_imp))
    counts = np.asarray(available, dtype=np.int64).reshape(-1, 2)
    return PairSample(
        first=np.concatenate(firsts) if firsts else np.empty(0, np.int64),
        second=np.concatenate(seconds) if seconds else np.empty(0, np.int64),
        genuine=np.concatenate(flags) if flags else np.empty(0, bool),
        group=np.concatenate(codes) if codes else np.empty(0, np.int64),
        group_names=tuple(str(n) for n in names),
        available_genuine=counts[:, 0],
        available_impostor=counts[:, 1],
    )


def cosine_scores(embeddings: Any, first: Any, second: Any, chunk_size: int = 65536) -> np.ndarray:
    """Cosine similarity of each pair, in float64 and clipped to [-1, 1]; (P,)."""
    z = _to_numpy(embeddings).astype(np.float64)
    if not np.isfinite(z).all():
        raise ValueError("embeddings contain NaN or infinite values; cannot score pairs")
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = z / np.where(norms > 0, norms, 1.0)
    first, second = _to_numpy(first), _to_numpy(second)
    scores = np.empty(len(first), dtype=np.float64)
    for start in range(0, len(first), chunk_size):
        stop = start + chunk_size
        scores[start:stop] = np.einsum("ij,ij->i", z[first[start:stop]], z[second[start:stop]])
    return np.clip(scores, -1.0, 1.0)


def threshold_grid(scores: Any, resolution: int = 1000) -> np.ndarray:
    """Thresholds k / resolution covering the scores, one step beyond each end; (T,) float64.

    At the first threshold every pair matches (FMR 1, FNMR 0), past the last none does (FMR 0, FNMR 1).
    """
    scores = _to_numpy(scores)
    if len(scores) == 0:
        return np.arange(-resolution, resolution + 1) / resolution
    low = math.floor(float(scores.min()) * resolution) - 1
    high = math.ceil(float(scores.max()) * resolution) + 1
    return np.arange(low, high + 1, dtype=np.int64) / resolution


@dataclass(frozen=True)
class ErrorCounts:
    """Error counts per group at each threshold; rates are derived so Python and the browser agree exactly."""

    thresholds: np.ndarray  # (T,) float64
    group_names: tuple[str, ...]
    false_matches: np.ndarray  # (G, T) int64: impostor pairs with score >= threshold
    false_non_matches: np.ndarray  # (G, T) int64: genuine pairs with score < threshold
    impostors: np.ndarray  # (G,) int64
    genuines: np.ndarray  # (G,) int64

    @property
    def fmr(self) -> np.ndarray:
        """(G, T) false match rates; NaN for a group without impostor pairs."""
        return _rate(self.false_matches, self.impostors)

    @property
    def fnmr(self) -> np.ndarray:
        """(G, T) false non-match rates; NaN for a group without genuine pairs."""
        return _rate(self.false_non_matches, self.genuines)

    def pooled(self, name: str = "all groups") -> ErrorCounts:
        """All groups' pairs together, as one group (each group weighs by its number of sampled pairs)."""
        return ErrorCounts(
            thresholds=self.thresholds,
            group_names=(name,),
            false_matches=self.false_matches.sum(axis=0, keepdims=True),
            false_non_matches=self.false_non_matches.sum(axis=0, keepdims=True),
            impostors=self.impostors.sum(keepdims=True),
            genuines=self.genuines.sum(keepdims=True),
        )


def _rate(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = counts / totals[:, None]
    return np.where(totals[:, None] > 0, rates, np.nan)


def error_counts(scores: Any, genuine: Any, group: Any, group_names: tuple[str, ...], thresholds: Any) -> ErrorCounts:
    """Count false matches (impostor score >= t) and false non-matches (genuine score < t) per group.

    Exact for any thresholds: one sort per group and kind, then a binary search per threshold.
    """
    scores, genuine, group = _to_numpy(scores).astype(np.float64), _to_numpy(genuine), _to_numpy(group)
    thresholds = _to_numpy(thresholds).astype(np.float64)
    if np.isnan(scores).any() or np.isnan(thresholds).any():
        raise ValueError("scores and thresholds must not contain NaN")
    n_groups = len(group_names)
    false_matches = np.zeros((n_groups, len(thresholds)), dtype=np.int64)
    false_non_matches = np.zeros_like(false_matches)
    impostors = np.zeros(n_groups, dtype=np.int64)
    genuines = np.zeros(n_groups, dtype=np.int64)
    for code in range(n_groups):
        in_group = group == code
        impostor_scores = np.sort(scores[in_group & ~genuine])
        genuine_scores = np.sort(scores[in_group & genuine])
        impostors[code], genuines[code] = len(impostor_scores), len(genuine_scores)
        false_matches[code] = len(impostor_scores) - np.searchsorted(impostor_scores, thresholds, side="left")
        false_non_matches[code] = np.searchsorted(genuine_scores, thresholds, side="left")
    return ErrorCounts(thresholds, tuple(group_names), false_matches, false_non_matches, impostors, genuines)


def pair_error_counts(
    embeddings: Any, pairs: PairSample, thresholds: Any | None = None, resolution: int = 1000
) -> ErrorCounts:
    """Score `pairs` and count errors per group on `thresholds` (default: `threshold_grid` of the scores)."""
    scores = cosine_scores(embeddings, pairs.first, pairs.second)
    if thresholds is None:
        thresholds = threshold_grid(scores, resolution)
    return error_counts(scores, pairs.genuine, pairs.group, pairs.group_names, thresholds)


def wilson_interval(successes: Any, trials: Any, z: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial rate; NaN where trials is 0.

    Cheap and well-behaved at rates near 0 (where FMR lives), unlike the normal approximation. Pairs share
    samples, so they are not independent and the true uncertainty is larger: read it as a lower bound.
    The operation order matches the model card's JavaScript so both give identical numbers.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        z2 = z * z
        denominator = 1.0 + z2 / n
        center = (p + z2 / (2.0 * n)) / denominator
        half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
        low, high = np.maximum(0.0, center - half), np.minimum(1.0, center + half)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def index_at_fmr(counts: ErrorCounts, target_fmr: float) -> np.ndarray:
    """Per group, the first threshold index whose FMR is <= `target_fmr` (-1 when none); (G,) int64.

    FMR falls as the threshold rises, so this is the loosest threshold that meets the target: the one that
    keeps FNMR lowest. Applied with the global FMR at a chosen threshold as target, it gives the per-group
    thresholds that equalise FMR.
    """
    meets = counts.fmr <= target_fmr  # NaN (no impostor pairs) never meets
    first = meets.argmax(axis=1)
    return np.where(meets.any(axis=1), first, -1).astype(np.int64)


def equal_fmr_thresholds(counts: ErrorCounts, operating_index: int) -> dict[str, Any]:
    """Per-group thresholds that give each group (at most) the pooled FMR at the operating threshold.

    Returns the target FMR, and per group the threshold index, threshold, FMR and FNMR there.
    """
    pooled = counts.pooled()
    target = float(pooled.fmr[0, operating_index])
    indices = index_at_fmr(counts, target)
    rows = np.arange(len(indices))
    valid = indices >= 0
    safe = np.where(valid, indices, 0)
    return {
        "target_fmr": target,
        "index": indices,
        "threshold": np.where(valid, counts.thresholds[safe], np.nan),
        "fmr": np.where(valid, counts.fmr[rows, safe], np.nan),
        "fnmr": np.where(valid, counts.fnmr[rows, safe], np.nan),
    }


def _probit(rates: np.ndarray, floor: float) -> np.ndarray:
    """Normal deviate of each rate, clipped to [floor, 1 - floor] (the DET axis scale)."""
    inverse = NormalDist().inv_cdf
    clipped = np.clip(np.nan_to_num(rates, nan=0.5), floor, 1.0 - floor)
    return np.vectorize(inverse, otypes=[np.float64])(clipped)


def roc_det_points(counts: ErrorCounts, det_floor: float = 1e-4) -> dict[str, dict[str, np.ndarray]]:
    """Per group, one ROC point (FMR, TMR = 1 - FNMR) and DET point (probit FMR, FNMR) per threshold.

    Use `error_counts` with the sorted unique scores as thresholds for the exact curves, or a grid.
    """
    fmr, fnmr = counts.fmr, counts.fnmr
    return {
        name: {
            "threshold": counts.thresholds,
            "fmr": fmr[g],
            "fnmr": fnmr[g],
            "tmr": 1.0 - fnmr[g],
            "det_fmr": _probit(fmr[g], det_floor),
            "det_fnmr": _probit(fnmr[g], det_floor),
        }
        for g, name in enumerate(counts.group_names)
    }


def rates_at_index(counts: ErrorCounts, index: int) -> dict[str, dict[str, Any]]:
    """Per group at one threshold index: counts, FMR/FNMR and their Wilson intervals (what the card shows)."""
    fmr_low, fmr_high = wilson_interval(counts.false_matches[:, index], counts.impostors)
    fnmr_low, fnmr_high = wilson_interval(counts.false_non_matches[:, index], counts.genuines)
    out = {}
    for g, name in enumerate(counts.group_names):
        out[name] = {
            "threshold": float(counts.thresholds[index]),
            "false_matches": int(counts.false_matches[g, index]),
            "impostors": int(counts.impostors[g]),
            "fmr": float(counts.fmr[g, index]),
            "fmr_ci95": [float(fmr_low[g]), float(fmr_high[g])],
            "false_non_matches": int(counts.false_non_matches[g, index]),
            "genuines": int(counts.genuines[g]),
            "fnmr": float(counts.fnmr[g, index]),
            "fnmr_ci95": [float(fnmr_low[g]), float(fnmr_high[g])],
        }
    return out
