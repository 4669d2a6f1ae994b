"""Class-level (cluster) bootstrap intervals of the per-query retrieval figures, per group and of the gaps.

A DML test split is a sample of *classes* (identities), not of independent images: the images of one class
share its difficulty, so resampling queries one by one understates the uncertainty. Each resample draws the
split's classes with replacement and weights every query by its class's multiplicity; the gallery stays
fixed (the figures are the queries' means). Per resample, a group's figure is the weighted mean over its
queries, and a gap is max - min over the groups with a value, so the gap gets its own interval rather than
two overlapping group intervals. Percentile intervals.

Cost: per metric one (R, C) @ (C, G) product for R resamples, C classes, G groups; the draws are made once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

OVERALL = "overall"


def class_resample_counts(n_classes: int, resamples: int, seed: int) -> Tensor:
    """(R, C) multiplicity of each class in each resample of C classes drawn with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_classes, np.full(n_classes, 1.0 / n_classes), size=resamples)
    return torch.as_tensor(counts, dtype=torch.float64)


def resampled_group_means(values: Tensor, class_index: Tensor, codes: Tensor, n_groups: int, counts: Tensor) -> Tensor:
    """(R, G) mean of `values` over each group's queries in each resample (NaN values ignored; NaN where a
    resample holds none of the group's classes). `class_index` (N,) maps each query to 0..C-1."""
    values = values.detach().double().cpu()
    keep = ~torch.isnan(values)
    cell = class_index.cpu()[keep] * n_groups + codes.cpu()[keep]
    n_classes = counts.shape[1]
    sums = torch.zeros(n_classes * n_groups, dtype=torch.float64).index_add_(0, cell, values[keep])
    sizes = torch.zeros(n_classes * n_groups, dtype=torch.float64).index_add_(0, cell, torch.ones_like(values[keep]))
    weighted = counts @ sums.view(n_classes, n_groups)
    totals = counts @ sizes.view(n_classes, n_groups)
    return torch.where(totals > 0, weighted / totals.clamp_min(1), torch.full_like(totals, float("nan")))


def percentile_interval(draws: Tensor, confidence: float) -> list[float] | None:
    """The central `confidence` interval of the defined draws; None when fewer than two are defined."""
    defined = draws[~torch.isnan(draws)]
    if defined.numel() < 2:
        return None
    tail = (1 - confidence) / 2
    low, high = torch.quantile(defined, torch.tensor([tail, 1 - tail], dtype=defined.dtype))
    return [float(low), float(high)]


def gap_draws(means: Tensor) -> Tensor:
    """(R,) max - min over the groups with a value in each resample (NaN where fewer than one has one)."""
    defined = ~torch.isnan(means)
    high = torch.where(defined, means, torch.full_like(means, -torch.inf)).amax(dim=1)
    low = torch.where(defined, means, torch.full_like(means, torch.inf)).amin(dim=1)
    return torch.where(defined.any(dim=1), high - low, torch.full_like(high, float("nan")))


def cluster_bootstrap_intervals(
    per_query: Mapping[str, Tensor],
    labels: Tensor,
    group_sets: Mapping[str, tuple[Tensor, Sequence[str]]],
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, dict[str, list[float] | None]]:
    """Intervals of every per-query metric: overall, each group of each set, and each set's gap.

    Args:
        per_query: metric -> (N,) per-query values (NaN: the query is excluded).
        labels: (N,) class of each query: the resampling unit.
        group_sets: key -> ((N,) group codes, group names). The key names the set's gap in the result: "gap" for
            the groups the report compares, e.g. "gap:Male" for an attribute's marginal groups.
        resamples, confidence, seed: R, the level (0.95) and the seed of the class draws (shared by all
            metrics and sets, so their intervals describe the same resamples).

    Returns:
        metric -> {"overall": [low, high], <group>: [low, high] or None, <gap key>: [low, high] or None}.

    Example:
        >>> labels = torch.arange(20).repeat_interleave(3)
        >>> hits = (labels % 4 != 0).double()  # a quarter of the classes miss
        >>> groups = (labels >= 10).long()
        >>> out = cluster_bootstrap_intervals({"recall@1": hits}, labels, {"gap": (groups, ["a", "b"])}, 200, 0.95, 0)
        >>> sorted(out["recall@1"]), out["recall@1"]["overall"][0] < 0.75 < out["recall@1"]["overall"][1]
        (['a', 'b', 'gap', 'overall'], True)
    """
    _, class_index = torch.unique(labels.cpu(), return_inverse=True)
    counts = class_resample_counts(int(class_index.max()) + 1 if len(labels) else 0, resamples, seed)
    everyone = torch.zeros(len(labels), dtype=torch.long)
    out: dict[str, dict[str, list[float] | None]] = {}
    for metric, values in per_query.items():
        entry = {
            OVERALL: percentile_interval(
                resampled_group_means(values, class_index, everyone, 1, counts)[:, 0], confidence
            )
        }
        for gap_key, (codes, names) in group_sets.items():
            means = resampled_group_means(values, class_index, codes, len(names), counts)
            entry |= {name: percentile_interval(means[:, g], confidence) for g, name in enumerate(names)}
            entry[gap_key] = percentile_interval(gap_draws(means), confidence)
        out[metric] = entry
    return out
