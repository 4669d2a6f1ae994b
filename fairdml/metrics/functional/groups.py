"""Per-subgroup reductions in the manner of fairlearn's MetricFrame: value per group, gap, ratio, worst.

Which direction is worse, per metric (used for "worst_group"), is the metric's `MetricSpec.higher_is_better`
(`fairdml.metrics.spec`, which says why for each).

Groups below the report's `min_group_size` are "small": they are not picked as worst while a larger group has
a value (see `group_gaps`).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import torch
from torch import Tensor

from fairdml.metrics.functional.stages import INTERVALS, staged


def min_over_max(values: list[float]) -> float | None:
    """fairlearn's ratio min / max, in [0, 1], 1 = equal groups.

    Uniformity is negative (a log of a mean <= 1), where min / max would exceed 1; for all-negative values the
    ratio is taken on magnitudes (smaller / larger |v|) so it keeps the same reading. Mixed signs or a zero
    extreme have no meaningful ratio: None.
    """
    low, high = min(values), max(values)
    if low == high:
        return 1.0
    if low > 0:
        return low / high
    if high < 0:
        return high / low
    return None


def group_gaps(
    values: dict[str, float | None], higher_better: bool, small_groups: Collection[str] | None = None
) -> dict[str, Any]:
    """Gap (max - min), ratio (min / max) and worst group over the groups that have a value.

    A single group with a value gives gap 0, ratio 1 and itself as worst; none gives None everywhere.

    `small_groups` (names with too few samples to trust, see `fairness_report(min_group_size=...)`): a group
    of one sample would otherwise be "worst" by noise alone, so "worst_group" is picked among the other
    groups, and only among small ones when no other group has a value. Two keys are then added:
    "worst_group_small" (True when the worst group is a small one) and "small_groups_excluded" (the small
    groups with a value that were passed over, in `values` order). "max_minus_min" and "min_over_max" stay
    over every group with a value: a gap is what was measured, and dropping the small groups from it would
    hide the minorities a fairness audit is for; the flags say which ends may be noise. With
    `small_groups=None` the result has only the three original keys.
    """
    defined = {name: v for name, v in values.items() if v is not None and not math.isnan(v)}
    small = set(small_groups) if small_groups is not None else set()
    if not defined:
        gap: dict[str, Any] = {"max_minus_min": None, "min_over_max": None, "worst_group": None}
        if small_groups is not None:
            gap |= {"worst_group_small": False, "small_groups_excluded": []}
        return gap
    candidates = {name: v for name, v in defined.items() if name not in small} or defined
    pick = min if higher_better else max
    worst = pick(candidates, key=candidates.__getitem__)  # first group in order on ties
    numbers = list(defined.values())
    gap = {
        "max_minus_min": max(numbers) - min(numbers),
        "min_over_max": min_over_max(numbers),
        "worst_group": worst,
    }
    if small_groups is not None:
        gap["worst_group_small"] = worst in small
        gap["small_groups_excluded"] = [name for name in defined if name in small and name not in candidates]
    return gap


def masked_mean(per_query: Tensor, mask: Tensor) -> float | None:
    """Mean of per-query values under `mask`, ignoring NaN (excluded queries); None if nothing is left."""
    values = per_query[mask]
    values = values[~torch.isnan(values)]
    return float(values.mean()) if values.numel() else None


def bootstrap_mean_interval(
    per_query: Tensor, mask: Tensor, *, n_resamples: int, confidence: float, generator: torch.Generator
) -> list[float] | None:
    """Percentile bootstrap interval of the mean of per-query values under `mask` (queries resampled).

    Minority groups are small: a gap without an interval misleads. Cost O(n_resamples * n_queries), done in
    blocks of resamples so memory stays bounded.
    """
    values = per_query[mask]
    values = values[~torch.isnan(values)].cpu()
    n = values.numel()
    if n == 0 or n_resamples <= 0:
        return None
    block = max(1, 2**22 // n)
    means = []
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        draws = torch.randint(0, n, (size, n), generator=generator)
        means.append(values[draws].mean(dim=1))
    means = torch.cat(means)
    tail = (1 - confidence) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=means.dtype))
    return [float(low), float(high)]


@staged(INTERVALS)
def group_intervals(
    per_query: dict[str, Tensor],
    codes: Tensor,
    names: list[str],
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, dict[str, list[float] | None]]:
    """Bootstrap intervals of the per-query metrics, overall and per group (queries resampled, seeded)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for metric, values in per_query.items():
        masks = {"overall": torch.ones_like(codes, dtype=torch.bool)}
        masks |= {name: codes == code for code, name in enumerate(names)}
        out[metric] = {
            key: bootstrap_mean_interval(
                values, mask, n_resamples=resamples, confidence=confidence, generator=generator
            )
            for key, mask in masks.items()
        }
    return out
