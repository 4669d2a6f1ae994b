"""Group fairness of a downstream classifier trained on frozen embeddings (does the bias propagate?).

Pure functions: hard predictions, targets and group codes in, per-group figures out, in the report's
shape (`overall`, `groups`, `gaps`). For a binary target (code 1 = positive) they add the usual group
fairness criteria: torchmetrics' `binary_fairness` gives demographic parity and equal opportunity as
min/max ratios; torchmetrics has no differences nor equalised odds, so those are computed here from the
same per-group rates (fairlearn's definitions: difference = max - min over groups; equalised odds
difference = the larger of the true- and false-positive-rate differences).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_fairness

from fairdml.metrics.functional.groups import group_gaps, group_intervals
from fairdml.utils.numbers import strict_json

GROUP_METRICS = ("accuracy", "balanced_accuracy")
BINARY_RATES = ("positive_rate", "true_positive_rate", "false_positive_rate")


def _check(preds: Tensor, target: Tensor, groups: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    tensors = [torch.as_tensor(t) for t in (preds, target, groups)]
    n = tensors[1].shape[0]
    for name, tensor in zip(("preds", "target", "groups"), tensors):
        if tensor.ndim != 1 or tensor.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n},) like target, got {tuple(tensor.shape)}")
        if tensor.is_floating_point():
            raise ValueError(f"{name} must hold integer codes (hard predictions), got dtype {tensor.dtype}")
    return tuple(t.long().cpu() for t in tensors)  # type: ignore[return-value]


def _mean_or_nan(values: Tensor) -> float:
    return float(values.double().mean()) if values.numel() else math.nan


def balanced_accuracy(preds: Tensor, target: Tensor) -> float:
    """Mean recall over the classes present in `target` (sklearn: balanced_accuracy_score); NaN if none."""
    recalls = [_mean_or_nan(preds[target == c] == c) for c in torch.unique(target)]
    return float(sum(recalls) / len(recalls)) if recalls else math.nan


def group_rates(preds: Tensor, target: Tensor, groups: Tensor, num_groups: int, binary: bool) -> dict[str, list[float]]:
    """Per group code 0..num_groups-1: n, accuracy, balanced accuracy and, if `binary`, the positive rate
    P(ŷ=1), true-positive rate P(ŷ=1 | y=1) and false-positive rate P(ŷ=1 | y=0). NaN where undefined."""
    preds, target, groups = _check(preds, target, groups)
    out: dict[str, list[float]] = {"n": [], **{m: [] for m in GROUP_METRICS}}
    if binary:
        out |= {rate: [] for rate in BINARY_RATES}
    for code in range(num_groups):
        p, y = preds[groups == code], target[groups == code]
        out["n"].append(int(y.numel()))
        out["accuracy"].append(_mean_or_nan(p == y))
        out["balanced_accuracy"].append(balanced_accuracy(p, y))
        if binary:
            out["positive_rate"].append(_mean_or_nan(p == 1))
            out["true_positive_rate"].append(_mean_or_nan(p[y == 1] == 1))
            out["false_positive_rate"].append(_mean_or_nan(p[y == 0] == 1))
    return out


def fairness_criteria(rates: dict[str, list[float]]) -> dict[str, float | None]:
    """Differences and ratios of the binary rates across groups (fairlearn's definitions)."""

    def spread(name: str) -> dict:  # max - min and min / max over the groups with a defined rate
        return group_gaps(dict(enumerate(rates[name])), higher_better=True)

    dp, eo, fpr = spread("positive_rate"), spread("true_positive_rate"), spread("false_positive_rate")
    odds = [d for d in (eo["max_minus_min"], fpr["max_minus_min"]) if d is not None]
    return {
        "demographic_parity_difference": dp["max_minus_min"],
        "demographic_parity_ratio": dp["min_over_max"],
        "equal_opportunity_difference": eo["max_minus_min"],
        "equal_opportunity_ratio": eo["min_over_max"],
        "equalized_odds_difference": max(odds) if odds else None,
    }


def torchmetrics_fairness(
    preds: Tensor, target: Tensor, groups: Tensor, group_names: Sequence[str]
) -> dict[str, dict[str, float | str | None]]:
    """torchmetrics' `binary_fairness` on the groups present, with its keys' group ids turned into names.

    torchmetrics expects contiguous group ids and names its result `DP_<lowest>_<highest>`; empty groups
    are left out first so that the ids it reports map back to the right names.
    """
    preds, target, groups = _check(preds, target, groups)
    present = torch.unique(groups)
    if present.numel() < 2:
        return {}
    contiguous = torch.searchsorted(present, groups)
    result = binary_fairness(preds, target, contiguous, task="all")
    out = {}
    for key, value in result.items():
        kind, low, high = key.split("_")
        name = {"DP": "demographic_parity", "EO": "equal_opportunity"}[kind]
        out[name] = {
            "ratio": float(value),
            "lowest_group": str(group_names[int(present[int(low)])]),
            "highest_group": str(group_names[int(present[int(high)])]),
        }
    return out


def downstream_report(
    preds: Tensor,
    target: Tensor,
    groups: Tensor,
    group_names: Sequence[str],
    *,
    binary: bool,
    bootstrap_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Overall and per-group accuracy (+ balanced accuracy), their gaps, bootstrap intervals of the
    accuracy, and for a binary target the per-group rates and fairness criteria. NaN becomes None."""
    preds, target, groups = _check(preds, target, groups)
    names = [str(name) for name in group_names]
    rates = group_rates(preds, target, groups, len(names), binary)
    overall = {
        "accuracy": _mean_or_nan(preds == target),
        "balanced_accuracy": balanced_accuracy(preds, target),
    }
    group_entries = {name: {key: values[code] for key, values in rates.items()} for code, name in enumerate(names)}
    gaps = {
        metric: group_gaps({name: entry[metric] for name, entry in group_entries.items()}, higher_better=True)
        for metric in GROUP_METRICS
    }
    intervals = group_intervals(
        {"accuracy": (preds == target).float()}, groups, names, bootstrap_resamples, confidence, seed
    )
    report = {"n": int(target.numel()), "overall": overall, "groups": group_entries, "gaps": gaps}
    report["intervals"] = intervals
    if binary:
        report["fairness"] = fairness_criteria(rates)
        report["fairness"]["torchmetrics"] = torchmetrics_fairness(preds, target, groups, names)
    return strict_json(report)
