"""fairdml.metrics.functional.downstream against scikit-learn and brute-force numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix
from torchmetrics.functional.classification import binary_fairness

from fairdml.metrics.functional.downstream import (
    downstream_report,
    fairness_criteria,
    group_rates,
    torchmetrics_fairness,
)


def _random(n: int, num_groups: int, num_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, num_classes, n)
    preds = np.where(rng.random(n) < 0.7, target, rng.integers(0, num_classes, n))
    groups = rng.integers(0, num_groups, n)
    return torch.as_tensor(preds), torch.as_tensor(target), torch.as_tensor(groups)


@pytest.mark.parametrize(("n", "num_groups"), [(40, 2), (300, 3), (1000, 5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_binary_group_rates_match_sklearn(n, num_groups, seed):
    preds, target, groups = _random(n, num_groups, 2, seed)
    rates = group_rates(preds, target, groups, num_groups, binary=True)
    for g in range(num_groups):
        mask = (groups == g).numpy()
        p, y = preds.numpy()[mask], target.numpy()[mask]
        tn, fp, fn, tp = confusion_matrix(y, p, labels=[0, 1]).ravel()
        assert rates["n"][g] == mask.sum()
        assert rates["accuracy"][g] == pytest.approx(accuracy_score(y, p))
        assert rates["balanced_accuracy"][g] == pytest.approx(balanced_accuracy_score(y, p))
        assert rates["positive_rate"][g] == pytest.approx((tp + fp) / len(y))
        assert rates["true_positive_rate"][g] == pytest.approx(tp / (tp + fn))
        assert rates["false_positive_rate"][g] == pytest.approx(fp / (fp + tn))


@pytest.mark.parametrize("num_classes", [3, 7])
def test_multiclass_group_rates_match_sklearn(num_classes):
    preds, target, groups = _random(500, 3, num_classes, seed=4)
    rates = group_rates(preds, target, groups, 3, binary=False)
    assert "positive_rate" not in rates
    for g in range(3):
        mask = (groups == g).numpy()
        p, y = preds.numpy()[mask], target.numpy()[mask]
        assert rates["accuracy"][g] == pytest.approx(accuracy_score(y, p))
        assert rates["balanced_accuracy"][g] == pytest.approx(balanced_accuracy_score(y, p))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fairness_criteria_brute_force_and_torchmetrics(seed):
    preds, target, groups = _random(400, 3, 2, seed)
    rates = group_rates(preds, target, groups, 3, binary=True)
    criteria = fairness_criteria(rates)
    p, y, a = preds.numpy(), target.numpy(), groups.numpy()
    positive = [p[a == g].mean() for g in range(3)]
    tpr = [p[(a == g) & (y == 1)].mean() for g in range(3)]
    fpr = [p[(a == g) & (y == 0)].mean() for g in range(3)]
    assert criteria["demographic_parity_difference"] == pytest.approx(max(positive) - min(positive))
    assert criteria["demographic_parity_ratio"] == pytest.approx(min(positive) / max(positive))
    assert criteria["equal_opportunity_difference"] == pytest.approx(max(tpr) - min(tpr))
    assert criteria["equal_opportunity_ratio"] == pytest.approx(min(tpr) / max(tpr))
    assert criteria["equalized_odds_difference"] == pytest.approx(max(max(tpr) - min(tpr), max(fpr) - min(fpr)))
    tm = torchmetrics_fairness(preds, target, groups, ["a", "b", "c"])
    assert tm["demographic_parity"]["ratio"] == pytest.approx(criteria["demographic_parity_ratio"], abs=1e-6)
    assert tm["equal_opportunity"]["ratio"] == pytest.approx(criteria["equal_opportunity_ratio"], abs=1e-6)
    assert tm["demographic_parity"]["lowest_group"] == "abc"[int(np.argmin(positive))]
    assert tm["equal_opportunity"]["highest_group"] == "abc"[int(np.argmax(tpr))]


def test_torchmetrics_names_survive_an_empty_group():
    # group 1 ("empty") has no sample; torchmetrics ids must map back to "low" and "high", not shift.
    preds = torch.tensor([1, 0, 0, 0, 1, 1, 1, 0])
    target = torch.tensor([1, 1, 0, 0, 1, 1, 0, 0])
    groups = torch.tensor([0, 0, 0, 0, 2, 2, 2, 2])
    tm = torchmetrics_fairness(preds, target, groups, ["low", "empty", "high"])
    assert tm["demographic_parity"] == {
        "ratio": pytest.approx(0.25 / 0.75),
        "lowest_group": "low",
        "highest_group": "high",
    }
    reference = binary_fairness(preds, target, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    assert tm["equal_opportunity"]["ratio"] == pytest.approx(float(reference["EO_0_1"]))


def test_report_shape_gaps_nan_and_intervals():
    preds, target, groups = _random(600, 2, 2, seed=7)
    groups[groups == 1] = 2  # code 1 empty
    report = downstream_report(preds, target, groups, ["x", "empty", "y"], binary=True, bootstrap_resamples=200)
    assert report["n"] == 600
    assert report["overall"]["accuracy"] == pytest.approx(accuracy_score(target, preds))
    assert report["groups"]["empty"]["n"] == 0 and report["groups"]["empty"]["accuracy"] is None
    accuracy = {g: report["groups"][g]["accuracy"] for g in ("x", "y")}
    gap = report["gaps"]["accuracy"]
    assert gap["max_minus_min"] == pytest.approx(abs(accuracy["x"] - accuracy["y"]))
    assert gap["worst_group"] == min(accuracy, key=accuracy.get)
    for key in ("overall", "x", "y"):
        low, high = report["intervals"]["accuracy"][key]
        value = report["overall"]["accuracy"] if key == "overall" else accuracy[key]
        assert low <= value <= high and high - low < 0.2
    assert report["intervals"]["accuracy"]["empty"] is None
    assert set(report["fairness"]) >= {
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "torchmetrics",
    }
    assert all(v is None or math.isfinite(v) for v in report["fairness"].values() if not isinstance(v, dict))


def test_multiclass_report_has_no_binary_criteria_and_rejects_scores():
    preds, target, groups = _random(100, 2, 5, seed=1)
    report = downstream_report(preds, target, groups, ["a", "b"], binary=False, bootstrap_resamples=0)
    assert "fairness" not in report and report["intervals"]["accuracy"]["overall"] is None
    with pytest.raises(ValueError, match="hard predictions"):
        downstream_report(preds.float() / 4, target, groups, ["a", "b"], binary=False)
    with pytest.raises(ValueError, match=r"groups must have shape \(100,\)"):
        downstream_report(preds, target, groups[:5], ["a", "b"], binary=False)
