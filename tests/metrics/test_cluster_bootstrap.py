"""Class-level bootstrap intervals against a brute-force computation that rebuilds every resample's query list.

Issue 27 changed two expectations on purpose: the groups' and overall intervals are expanded percentile
intervals (percentiles at `expanded_confidence`'s level), and the gap's interval is the test inversion of
`gap_interval`, checked here against a plain NumPy construction of its acceptance rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import ndtr, ndtri, stdtrit

from fairdml.metrics.functional.intervals import class_resample_counts, cluster_bootstrap_intervals


def brute_force(values, labels, codes, names, resamples, confidence, seed):
    """Each resample as a list of queries: every query of a drawn class, once per draw; plain float64 means.
    Returns the groups' and overall intervals, and what the gap's test needs: the group means, their draws and
    the deviations' scale."""
    classes = np.unique(labels)
    counts = class_resample_counts(len(classes), resamples, seed).numpy().astype(int)
    defined = ~np.isnan(values)
    masks = {"overall": defined} | {name: defined & (codes == g) for g, name in enumerate(names)}
    holding = {key: np.isin(classes, labels[mask]) for key, mask in masks.items()}  # classes with a value there
    per_group = {key: [] for key in masks}
    for row in counts:
        chosen = np.concatenate([np.repeat(np.flatnonzero(labels == c), m) for c, m in zip(classes, row) if m])
        for key, mask in masks.items():
            members = chosen[mask[chosen]]
            per_group[key].append(values[members].mean() if len(members) else np.nan)
    out, n_classes, ratios = {}, {}, {}
    for key, draws in per_group.items():
        n = int(holding[key].sum())
        n_star = (counts * holding[key]).sum(axis=1)  # the key's classes in each resample
        ratio = (n - 1) * np.mean(1 / n_star[n_star > 0]) if n > 1 else 1.0
        n_classes[key], ratios[key] = n, ratio
        level = confidence if n < 2 else 1 - 2 * ndtr(-stdtrit(n - 1, (1 + confidence) / 2) / np.sqrt(ratio))
        draws = np.array(draws)
        draws = draws[~np.isnan(draws)]
        out[key] = list(np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])) if len(draws) >= 2 else None
    df = sum(max(n_classes[name] - 1, 0) for name in names)
    t_over_z = stdtrit(df, (1 + confidence) / 2) / ndtri((1 + confidence) / 2) if df >= 1 else 1.0
    scale = np.array([t_over_z / np.sqrt(ratios[name]) for name in names])
    observed = np.array([values[masks[name]].mean() if masks[name].any() else np.nan for name in names])
    return out, observed, np.array([per_group[name] for name in names]).T, scale


def gap_test(observed, draws, scale, confidence):
    """The gap's test at any theta, written out with NumPy: the null means by a dense search over c, the
    resampled gaps, the acceptance rule. Returns (upper end, accepted(theta))."""
    alpha = 1 - confidence
    defined = ~np.isnan(observed)
    m = observed[defined]
    deviations = (draws - observed)[:, defined] * scale[defined]
    high, low = int(np.argmax(m)), int(np.argmin(np.where(np.arange(len(m)) == np.argmax(m), np.inf, m)))
    gap = m.max() - m.min()
    signed = deviations[:, high] - deviations[:, low]
    tail = np.nanquantile(signed, alpha / 2)
    weights = 1 / np.nanmean(deviations**2, axis=0)

    def null_means(theta):
        grid = np.linspace(m.min() - theta, m.max(), 200_001)[:, None]
        fitted = np.clip(m, grid, grid + theta)
        fitted[:, high], fitted[:, low] = grid[:, 0] + theta, grid[:, 0]
        best = np.argmin(((fitted - m) ** 2 * weights).sum(axis=1))
        return fitted[best] - grid[best, 0]

    def accepted(theta):
        model = null_means(theta) + deviations
        resampled = np.nanmax(model, axis=1) - np.nanmin(model, axis=1)
        resampled = resampled[~np.isnan(resampled)]
        between = ((resampled >= max(0.0, theta + tail)) & (resampled < gap)).sum()
        return between <= (1 - alpha) * len(resampled)

    return gap - tail, accepted


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
    expected, observed, draws, scale = brute_force(values, labels, codes, names, 60, 0.9, seed)
    assert set(got) == set(expected) | {"gap"}
    for key, interval in expected.items():
        if interval is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(interval, abs=1e-12), key
    low, high = got["gap"]
    upper, accepted = gap_test(observed, draws, scale, 0.9)
    assert high == pytest.approx(upper, abs=1e-12)
    gap = np.nanmax(observed) - np.nanmin(observed)
    assert 0 <= low <= gap <= high  # the interval holds its own point
    if low == 0:
        assert accepted(0.0)
    else:  # the lower end is where the test starts to accept (up to the search's resolution)
        step = 1e-4 * high
        assert not accepted(0.0) and not accepted(low - step) and accepted(low + step)


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
