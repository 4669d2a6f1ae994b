"""One `MetricSpec` per report metric: the report, the logger keys, the monitor's valid keys, the worst-group
choice and the card's labels all follow it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fairdml.callbacks.selection import validation_keys
from fairdml.metrics import fairness_report, flatten_report
from fairdml.metrics.functional import higher_is_better
from fairdml.metrics.spec import GAP_SUMMARIES, metric_spec, metric_specs, summary_higher_is_better
from fairdml.reports.card.metric_names import metric_header, metric_info

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")

KS = [(1,), (1, 2, 4, 8)]


def clustered(n_groups: int, classes_per_group: int = 4, per_class: int = 10, dim: int = 8, seed: int = 0):
    """Unit embeddings around one centre per class; a group is a block of classes (so the probe has a signal)."""
    generator = torch.Generator().manual_seed(seed)
    n_classes = n_groups * classes_per_group
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    centres = torch.randn(n_classes, dim, generator=generator)
    x = centres[labels] + 0.6 * torch.randn(len(labels), dim, generator=generator)
    names = [f"g{i}" for i in range(n_groups)]
    return F.normalize(x, dim=1), labels, labels // classes_per_group, names


@pytest.mark.parametrize("ks", KS)
def test_every_report_metric_has_a_spec_in_report_order(ks):
    z, y, groups, names = clustered(n_groups=2)
    report = fairness_report(z, y, groups, ks=ks, group_names=names, bootstrap_resamples=20)
    specs = metric_specs(ks)
    per_group = [spec.name for spec in specs if spec.per_group]
    assert list(report["overall"]) == [spec.name for spec in specs]
    assert list(report["gaps"]) == per_group
    for entry in report["groups"].values():
        assert [key for key in entry if key not in ("n", "small")] == per_group
    assert list(report["intervals"]) == [spec.name for spec in specs if spec.scope == "per_query"]
    assert all(metric_spec(spec.name) == spec for spec in specs)
    assert metric_spec("recall@17").label == "Recall@17"
    assert metric_spec("fmr") is None and metric_spec("recal@1") is None


@pytest.mark.parametrize("ks", KS)
@pytest.mark.parametrize("leakage", [False, True])
@pytest.mark.parametrize("n_groups", [2, 3])
def test_logged_keys_are_the_validation_keys(ks, leakage, n_groups):
    z, y, groups, names = clustered(n_groups)
    # as a validation report: no intervals (ReportSettings.from_config(..., "val"))
    report = fairness_report(z, y, groups, ks=ks, group_names=names, leakage=leakage, bootstrap_resamples=0)
    flat = flatten_report(report, "val")
    # Every value of this report is finite, so each valid key is logged, in the same order.
    assert list(flat) == validation_keys(ks, names, leakage)
    unprefixed = [key.removeprefix("val/").replace("val_groups/", "groups/", 1) for key in flat]
    assert list(flatten_report(report, "")) == unprefixed


@pytest.mark.parametrize("n_groups", [2, 3])
def test_directions_agree_with_the_worst_group(n_groups):
    z, y, groups, names = clustered(n_groups, seed=1)
    report = fairness_report(z, y, groups, ks=(1, 4), group_names=names, min_group_size=1)
    for spec in metric_specs((1, 4)):
        assert higher_is_better(spec.name) is spec.higher_is_better
        if not spec.per_group:
            assert spec.name not in report["gaps"]
            continue
        values = {name: report["groups"][name][spec.name] for name in names}
        pick = min if spec.higher_is_better else max
        assert report["gaps"][spec.name]["worst_group"] == pick(values, key=values.__getitem__), spec.name
    assert higher_is_better("accuracy")  # a figure with no spec (downstream) keeps group_gaps' default


def test_gap_summary_directions():
    assert GAP_SUMMARIES == {"gap": False, "ratio": True, "worst": True}
    assert summary_higher_is_better("val/uniformity/gap") is False
    assert summary_higher_is_better("val/uniformity/worst") is True
    assert summary_higher_is_better("val/recall_at_1/ratio") is True
    for key in ("val/recall_at_1", "val_groups/recall_at_1/gap", "gap", "train/loss"):
        assert summary_higher_is_better(key) is None, key


def test_card_labels_are_unchanged():
    assert metric_header("recall@4") == "Recall@4 ↑"
    assert metric_info("recall@4") == (
        "Recall@4",
        "share of queries with a same-class sample among their k = 4 nearest neighbours (query excluded)",
    )
    assert metric_header("intra_alignment") == "Intra-class alignment ↓"
    assert metric_info("uniformity") == ("Uniformity", "log mean exp(-2 d²) over pairs: lower = spread more evenly")
    assert metric_header("attribute_leakage") == "Attribute leakage ↓"
    assert metric_info("fmr") == ("FMR", "false match rate: share of impostor pairs (different classes) that match")
    assert metric_info("accuracy") == ("accuracy", "")
    assert metric_header("accuracy") == "accuracy ↑"
