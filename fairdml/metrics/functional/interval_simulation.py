"""Coverage of the class-bootstrap intervals of the Recall@1 gap, by simulation with a known true gap (issue 27).

A data set mimics a test split: classes split between the groups, each class with a hit probability drawn from a
Beta around its group's mean (class-level sd ~0.15), and its queries' Recall@1 hits drawn 0/1 at that
probability. The true gap is the range of the groups' mean probabilities, known by construction. Each data set
goes through the same functions as a report (`intervals`), and the share of data sets whose interval holds the
true gap is the coverage. Used by experiments/interval_coverage.py and tests/metrics/test_interval_coverage.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fairdml.metrics.functional.intervals import (
    class_membership,
    class_resample_counts,
    expanded_confidence,
    extreme_groups,
    gap_draws,
    gap_interval,
    percentile_interval,
    resampled_group_means,
    small_sample_scale,
    variance_ratio,
)


@dataclass(frozen=True)
class Setting:
    """One simulated design: the groups' mean hit probabilities, and the split's shape."""

    name: str
    group_means: tuple[float, ...]
    classes_per_group: int = 15
    queries_per_class: int = 20
    class_sd: float = 0.15

    @property
    def true_gap(self) -> float:
        return max(self.group_means) - min(self.group_means)


# 30 test classes: 15 per group for two groups, 10 for three. 0.05 is about one standard error of a difference of
# two group means here (per class: sd ~0.17 of a hit rate over 20 queries; 15 classes: 0.044 per group).
SETTINGS = (
    Setting("2 groups, no gap", (0.8, 0.8)),
    Setting("2 groups, small gap", (0.8, 0.75)),
    Setting("2 groups, large gap", (0.8, 0.5)),
    Setting("3 groups, no gap", (0.8, 0.8, 0.8), classes_per_group=10),
    Setting("3 groups, small gap, evenly spread", (0.8, 0.775, 0.75), classes_per_group=10),
    Setting("3 groups, small gap, one group lower", (0.8, 0.8, 0.75), classes_per_group=10),
    Setting("3 groups, large gap, evenly spread", (0.8, 0.65, 0.5), classes_per_group=10),
    Setting("3 groups, large gap, one group lower", (0.8, 0.8, 0.5), classes_per_group=10),
)


def simulate_split(setting: Setting, rng: np.random.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """One split: per-query 0/1 hits (N,), class labels (N,) and group codes (N,)."""
    groups = len(setting.group_means)
    mean = np.repeat(np.asarray(setting.group_means), setting.classes_per_group)
    concentration = mean * (1 - mean) / setting.class_sd**2 - 1  # Beta(mean * c, (1 - mean) * c) has sd class_sd
    probability = rng.beta(mean * concentration, (1 - mean) * concentration)
    hits = rng.binomial(setting.queries_per_class, probability)
    per_query = np.arange(setting.queries_per_class)[None, :] < hits[:, None]  # class c: hits[c] ones
    labels = np.repeat(np.arange(groups * setting.classes_per_group), setting.queries_per_class)
    codes = np.repeat(np.arange(groups), setting.classes_per_group * setting.queries_per_class)
    return torch.as_tensor(per_query.ravel(), dtype=torch.float64), torch.as_tensor(labels), torch.as_tensor(codes)


def bootstrap_split(
    hits: Tensor, labels: Tensor, codes: Tensor, groups: int, resamples: int, confidence: float, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """As `cluster_bootstrap_intervals` makes them for one split: the group means (G,), their class-bootstrap
    draws (R, G), the gap's `small_sample_scale` (G,) and the groups' expanded percentile intervals (G, 2)."""
    _, class_index = torch.unique(labels, return_inverse=True)
    n_classes = int(class_index.max()) + 1
    counts = class_resample_counts(n_classes, resamples, seed)
    draws = resampled_group_means(hits, class_index, codes, groups, counts)
    observed = resampled_group_means(hits, class_index, codes, groups, torch.ones(1, n_classes, dtype=torch.float64))
    members = class_membership(hits, class_index, codes, groups, n_classes)
    classes, ratio = members.sum(dim=0), variance_ratio(counts, members)
    expanded = [
        percentile_interval(draws[:, g], expanded_confidence(confidence, int(classes[g]), float(ratio[g])))
        for g in range(groups)
    ]
    return observed[0], draws, small_sample_scale(classes, ratio, confidence), torch.tensor(expanded)


def simulate_intervals(
    setting: Setting, data_sets: int = 500, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Tensor]:
    """Per data set: the observed gap (S,), the gap's intervals (S, 2) by each method, and each group's (S, G, 2).

    Gap: "percentile", the old interval (percentiles of the resampled max - min); "signed", percentiles of the
    resampled difference between the groups best and worst in the full sample, clamped at 0 (a candidate, not
    used); "inversion", `gap_interval` as reports make it. Groups: "groups percentile", the old intervals, and
    "groups expanded", as reports make them.
    """
    rng = np.random.default_rng(seed)
    groups = len(setting.group_means)
    splits = [
        bootstrap_split(*simulate_split(setting, rng), groups, resamples, confidence, seed * 1_000_003 + i)
        for i in range(data_sets)
    ]
    means, draws, scale, expanded = (torch.stack(parts) for parts in zip(*splits))  # (S, G), (S, R, G), ...
    high, low = extreme_groups(means)
    signed = draws[torch.arange(data_sets), :, high] - draws[torch.arange(data_sets), :, low]  # (S, R)
    tail = (1 - confidence) / 2
    levels = torch.tensor([tail, 1 - tail], dtype=torch.float64)
    return {
        "gap": gap_draws(means.unsqueeze(1))[:, 0],
        "percentile": torch.tensor([percentile_interval(row, confidence) for row in gap_draws(draws)]),
        "signed": torch.quantile(signed, levels, dim=-1).T.clamp_min(0),
        "inversion": gap_interval(means, draws, confidence, scale),
        "groups percentile": torch.quantile(draws, levels, dim=1).permute(1, 2, 0),
        "groups expanded": expanded,
    }


def coverage_row(setting: Setting, intervals: dict[str, Tensor]) -> dict[str, float]:
    """Per gap method: coverage of the true gap, mean width, share of intervals that exclude their own observed
    gap; per group method: coverage of the groups' true means (over all groups and data sets)."""
    truth, gap = setting.true_gap, intervals["gap"]
    eps = 1e-9  # the true gap 0 against an end computed as 0.0 or as a difference of equal floats
    row: dict[str, float] = {}
    for method in ("percentile", "signed", "inversion"):
        low, high = intervals[method].unbind(-1)
        row[f"{method} coverage"] = float(((low <= truth + eps) & (truth - eps <= high)).double().mean())
        row[f"{method} width"] = float((high - low).mean())
        row[f"{method} excludes point"] = float(((gap < low - eps) | (gap > high + eps)).double().mean())
    true_means = torch.tensor(setting.group_means, dtype=torch.float64)
    for method in ("groups percentile", "groups expanded"):
        low, high = intervals[method].unbind(-1)
        row[f"{method} coverage"] = float(((low <= true_means) & (true_means <= high)).double().mean())
    return row


def coverage_table(rows: list[tuple[Setting, dict[str, float]]]) -> str:
    """Markdown, a row per setting: the gap's coverage by the old percentile, the new test-inversion and the
    signed-difference intervals, widths and shares excluding the observed gap (old / new), and the groups'
    intervals' coverage (old percentile / new expanded)."""
    lines = [
        "| setting | true gap | gap coverage: old (percentile) | new (test inversion) | signed difference "
        "| mean width: old / new | excludes own point: old / new | groups' coverage: old / new |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for setting, row in rows:
        lines.append(
            f"| {setting.name} | {setting.true_gap:.2f} | {row['percentile coverage']:.1%} "
            f"| {row['inversion coverage']:.1%} | {row['signed coverage']:.1%} "
            f"| {row['percentile width']:.3f} / {row['inversion width']:.3f} "
            f"| {row['percentile excludes point']:.1%} / {row['inversion excludes point']:.1%} "
            f"| {row['groups percentile coverage']:.1%} / {row['groups expanded coverage']:.1%} |"
        )
    return "\n".join(lines)
