"""EmbeddingFairness (torchmetrics wrapper) in one process: equals the functional report, drops padding
duplicates by index, survives pickling, and flattens for loggers."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

from fairdml.metrics import EmbeddingFairness, fairness_report, flatten_report
from fairdml.metrics.fairness import drop_duplicate_indices

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")),
]
NAMES = ["light", "dark", "unseen"]


def make_data(n: int = 90, dim: int = 8, n_classes: int = 15, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (n,), generator=generator)
    x = torch.randn(n_classes, dim, generator=generator)[labels] + 0.7 * torch.randn(n, dim, generator=generator)
    groups = torch.randint(0, 2, (n,), generator=generator)
    return F.normalize(x, dim=1), labels, groups


def feed(metric: EmbeddingFairness, z, y, groups, order, batch_size: int) -> None:
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        metric.update(z[batch], y[batch], groups[batch], batch)


def assert_same(actual, expected, path: str = "report") -> None:
    """Recursive equality, floats to 1e-9 (the same numbers computed twice, in another batch order)."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected), path
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=1e-9), path
    else:
        assert actual == expected, path


def assert_reports_equal(actual: dict, expected: dict) -> None:
    for section in ("n", "overall", "groups", "gaps", "warnings"):
        assert_same(actual[section], expected[section], section)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch_size", [7, 32])
def test_metric_equals_functional_report_in_any_batch_order(batch_size, device):
    z, y, groups = make_data()
    metric = EmbeddingFairness(group_names=NAMES, ks=(1, 4)).to(device)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(3))
    feed(metric, z.to(device), y.to(device), groups.to(device), order.to(device), batch_size)
    report = metric.compute()
    expected = fairness_report(z, y, groups, ks=(1, 4), group_names=NAMES)
    assert_reports_equal(report, expected)
    assert report["excluded"]["duplicate_indices"] == 0
    assert report["groups"]["unseen"]["n"] == 0


def test_padding_duplicates_are_dropped_keeping_the_first_occurrence():
    z, y, groups = make_data()
    metric = EmbeddingFairness(group_names=NAMES[:2], leakage=False)
    feed(metric, z, y, groups, torch.arange(90), 16)
    # A padded repeat of samples 0..4 (with different values, so keeping the wrong copy would show).
    metric.update(-z[:5], y[:5], 1 - groups[:5], torch.arange(5))
    report = metric.compute()
    assert report["excluded"]["duplicate_indices"] == 5
    assert_reports_equal(report, fairness_report(z, y, groups, group_names=NAMES[:2], leakage=False))


def test_drop_duplicate_indices_orders_by_index():
    keep = drop_duplicate_indices(torch.tensor([5, 2, 5, 0, 2, 9]))
    assert keep.tolist() == [3, 1, 0, 5]


@pytest.mark.filterwarnings("ignore:.*called before the ``update``")
def test_metric_survives_pickling_with_state():
    z, y, groups = make_data()
    metric = EmbeddingFairness(group_names=NAMES[:2], ks=(1, 2), seed=3)
    feed(metric, z, y, groups, torch.arange(90), 25)
    clone = pickle.loads(pickle.dumps(metric))
    assert_reports_equal(clone.compute(), metric.compute())
    clone.reset()
    with pytest.raises(ValueError, match="before any update"):
        clone.compute()


def test_update_rejects_mismatched_batches():
    metric = EmbeddingFairness(group_names=NAMES)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        metric.update(torch.randn(4, 3), torch.zeros(3), torch.zeros(4), torch.arange(4))


def test_flatten_report_gives_logger_keys_and_skips_none():
    z, y, groups = make_data()
    report = fairness_report(z, y, groups, ks=(1,), group_names=NAMES)
    flat = flatten_report(report, "val")
    assert flat["val/recall_at_1"] == report["overall"]["recall@1"]
    assert flat["val_groups/recall_at_1/dark"] == report["groups"]["dark"]["recall@1"]
    assert flat["val/recall_at_1/gap"] == report["gaps"]["recall@1"]["max_minus_min"]
    assert flat["val/recall_at_1/ratio"] == report["gaps"]["recall@1"]["min_over_max"]
    worst = min(("light", "dark"), key=lambda g: report["groups"][g]["recall@1"])
    assert flat["val/recall_at_1/worst"] == report["groups"][worst]["recall@1"]
    worst = max(("light", "dark"), key=lambda g: report["groups"][g]["uniformity"])  # lower is better
    assert flat["val/uniformity/worst"] == report["groups"][worst]["uniformity"]
    assert "val/attribute_leakage/worst" not in flat  # overall only
    assert "val_groups/recall_at_1/unseen" not in flat
    assert all(isinstance(v, float) for v in flat.values())


def test_flatten_report_skips_worst_when_no_group_has_a_value():
    no_value = {"max_minus_min": None, "min_over_max": None, "worst_group": None}
    report = {"overall": {"nmi": None}, "groups": {"a": {"n": 0, "nmi": None}}, "gaps": {"nmi": no_value}}
    assert flatten_report(report, "test") == {}


def test_indices_are_optional_and_the_flat_result_goes_to_log_dict():
    """Without `indices` (one process) the report equals the one with explicit indices; `compute_flat` gives
    scalars keyed as `flatten_report` keys them."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(6)
    embeddings = torch.randn(10, 8, generator=generator)[labels] + 0.4 * torch.randn(60, 8, generator=generator)
    groups = (labels % 4 == 0).long()
    with_indices, without = (EmbeddingFairness(["a", "b"], ks=(1, 2), leakage=False) for _ in range(2))
    for start in range(0, 60, 16):
        batch = slice(start, start + 16)
        with_indices.update(embeddings[batch], labels[batch], groups[batch], torch.arange(60)[batch])
        without.update(embeddings[batch], labels[batch], groups[batch])
    assert without.compute() == with_indices.compute()
    flat = without.compute_flat("val")
    assert flat["val/recall_at_1"] == with_indices.compute()["overall"]["recall@1"]
    assert all(isinstance(value, float) for value in flat.values()) and "val/recall_at_1/gap" in flat
    without.reset()
    without.update(embeddings[:16], labels[:16], groups[:16])
    assert without.indices[0].tolist() == list(range(16))  # numbering starts again after a reset
