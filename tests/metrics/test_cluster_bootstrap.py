"""Class-level bootstrap intervals against a brute-force computation that rebuilds every resample's query list."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairdml.metrics.functional.intervals import class_resample_counts, cluster_bootstrap_intervals


def brute_force(values, labels, codes, names, resamples, confidence, seed):
    """Each resample as a list of queries: every query of a drawn class, once per draw; plain float64 means."""
    classes = np.unique(labels)
    counts = class_resample_counts(len(classes), resamples, seed).numpy().astype(int)
    per_group = {name: [] for name in names} | {"overall": [], "gap": []}
    for row in counts:
        chosen = np.concatenate([np.repeat(np.flatnonzero(labels == c), m) for c, m in zip(classes, row) if m])
        kept = chosen[~np.isnan(values[chosen])]
        per_group["overall"].append(values[kept].mean())
        means = []
        for g, name in enumerate(names):
            members = kept[codes[kept] == g]
            means.append(values[members].mean() if len(members) else np.nan)
            per_group[name].append(means[-1])
        defined = [m for m in means if not np.isnan(m)]
        per_group["gap"].append(max(defined) - min(defined) if defined else np.nan)
    tail = (1 - confidence) / 2
    out = {}
    for key, draws in per_group.items():
        draws = np.array(draws)
        draws = draws[~np.isnan(draws)]
        out[key] = list(np.quantile(draws, [tail, 1 - tail])) if len(draws) >= 2 else None
    return out


@pytest.mark.parametrize("n_classes,per_class,n_groups", [(6, 3, 2), (25, 4, 3), (80, 2, 4)])
@pytest.mark.parametrize("seed", [0, 5])
def test_matches_a_brute_force_bootstrap(n_classes, per_class, n_groups, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes) * 7 + 3, per_class)  # non-contiguous class ids
    class_group = rng.integers(0, n_groups, n_classes)
    codes = np.repeat(class_group, per_class)
    values = rng.random(len(labels))
    values[rng.random(len(labels)) < 0.1] = np.nan  # excluded queries
    names = [f"g{g}" for g in range(n_groups)]
    got = cluster_bootstrap_intervals(
        {"m": torch.as_tensor(values)}, torch.as_tensor(labels), {"gap": (torch.as_tensor(codes), names)}, 60, 0.9, seed
    )["m"]
    expected = brute_force(values, labels, codes, names, 60, 0.9, seed)
    assert set(got) == set(expected)
    for key, interval in expected.items():
        if interval is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(interval, abs=1e-12), key


def test_whole_classes_are_resampled_not_queries():
    """Queries of a class are identical here: the class-level interval is wider than the query-level one would be
    and contains the observed mean; a group absent from the split has no interval."""
    labels = torch.arange(30).repeat_interleave(10)
    hits = (torch.arange(30) % 3 == 0).double().repeat_interleave(10)  # a third of the classes hit
    codes = torch.zeros(300, dtype=torch.long)
    out = cluster_bootstrap_intervals({"r": hits}, labels, {"gap": (codes, ["all", "none"])}, 500, 0.95, 0)["r"]
    low, high = out["overall"]
    assert low < 1 / 3 < high and high - low > 0.25  # ~ +-1.96 * sqrt(1/3 * 2/3 / 30) on either side
    assert out["none"] is None and out["gap"] == [0.0, 0.0]


def test_marginal_sets_have_their_own_gap_keys():
    labels = torch.arange(12).repeat_interleave(2)
    values = torch.rand(24, generator=torch.Generator().manual_seed(0)).double()
    crossed = labels % 4
    sets = {"gap": (crossed, ["a", "b", "c", "d"]), "gap:A": (crossed // 2, ["A=0", "A=1"])}
    out = cluster_bootstrap_intervals({"m": values}, labels, sets, 50, 0.95, 1)["m"]
    assert set(out) == {"overall", "a", "b", "c", "d", "gap", "A=0", "A=1", "gap:A"}


def test_a_report_has_intervals_by_default_for_every_group_and_gap_and_they_reach_every_output():
    from fairdml.metrics.fairness import flatten_report
    from fairdml.metrics.functional.report import fairness_report
    from fairdml.reports.long_table import report_rows
    from fairdml.reports.runs import report_intervals

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(30).repeat_interleave(4)
    embeddings = torch.nn.functional.one_hot(labels % 8, 8).float() + 0.7 * torch.randn(120, 8, generator=generator)
    codes = (labels % 3 == 0).long() * 2 + labels % 2
    names = ["A=0|B=0", "A=0|B=1", "A=1|B=0", "A=1|B=1"]
    report = fairness_report(embeddings, labels, codes, group_names=names, ks=(1,), leakage=False, min_group_size=1)
    assert report["settings"]["bootstrap_resamples"] == 1000 and report["settings"]["confidence"] == 0.95
    expected = {"overall", *names, "gap", "A=0", "A=1", "B=0", "B=1", "gap:A", "gap:B"}
    assert set(report["intervals"]["recall@1"]) == expected == set(report["intervals"]["map@r"])
    low, high = report["intervals"]["recall@1"]["gap"]
    assert 0 <= low <= high <= 1
    flat = flatten_report(report, "test")
    assert (
        flat["test/recall_at_1/gap/low"] == low
        and flat["test/A/recall_at_1/gap/high"] == report["intervals"]["recall@1"]["gap:A"][1]
    )
    assert flat["test_groups/recall_at_1/B-1/low"] == report["intervals"]["recall@1"]["B=1"][0]
    rows = {(r["attribute"], r["group"], r["metric"]): r for r in report_rows(report)}
    assert [rows[("B", "gap", "recall@1")][e] for e in ("low", "high")] == report["intervals"]["recall@1"]["gap:B"]
    assert report_intervals(report)["recall@1_gap"] == (low, high)
    off = fairness_report(embeddings, labels, codes, group_names=names, ks=(1,), leakage=False, bootstrap_resamples=0)
    assert "intervals" not in off and "confidence" not in off["settings"]
