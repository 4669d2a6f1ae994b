"""Per-group FMR/FNMR, pair sampling and equal-FMR thresholds against brute-force loops in float64."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from fairdml.metrics.functional import thresholds as th
from fairdml.reports.card.verification import browser_data


def _brute_counts(scores, genuine, group, n_groups, thresholds):
    """Explicit loops over pairs: (G, T) false matches and false non-matches, and totals per group."""
    fm = np.zeros((n_groups, len(thresholds)), dtype=np.int64)
    fnm = np.zeros_like(fm)
    imp = np.zeros(n_groups, dtype=np.int64)
    gen = np.zeros(n_groups, dtype=np.int64)
    for s, is_genuine, g in zip(scores.tolist(), genuine.tolist(), group.tolist()):
        if is_genuine:
            gen[g] += 1
        else:
            imp[g] += 1
        for k, t in enumerate(thresholds.tolist()):
            if is_genuine and s < t:
                fnm[g, k] += 1
            if not is_genuine and s >= t:
                fm[g, k] += 1
    return fm, fnm, imp, gen


def _clustered(n_samples, n_classes, n_groups, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_samples)
    centers = rng.normal(size=(n_classes, dim))
    embeddings = centers[labels] + 0.8 * rng.normal(size=(n_samples, dim))
    groups = np.array([f"g{c % n_groups}" for c in labels])  # group is a property of the class
    return embeddings.astype(np.float32), labels, groups


@pytest.mark.parametrize("n_pairs,n_groups", [(7, 1), (60, 3), (400, 4)])
def test_error_counts_match_brute_force(n_pairs, n_groups):
    rng = np.random.default_rng(n_pairs)
    scores = np.round(rng.uniform(-1, 1, n_pairs), 2)  # rounded: ties and thresholds equal to scores
    genuine = rng.random(n_pairs) < 0.4
    group = rng.integers(0, n_groups, n_pairs)
    thresholds = np.concatenate([np.linspace(-1.1, 1.1, 23), scores[:5]])
    names = tuple(f"g{i}" for i in range(n_groups))
    counts = th.error_counts(scores, genuine, group, names, thresholds)
    fm, fnm, imp, gen = _brute_counts(scores, genuine, group, n_groups, thresholds)
    np.testing.assert_array_equal(counts.false_matches, fm)
    np.testing.assert_array_equal(counts.false_non_matches, fnm)
    np.testing.assert_array_equal(counts.impostors, imp)
    np.testing.assert_array_equal(counts.genuines, gen)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_array_equal(counts.fmr, np.where(imp[:, None] > 0, fm / imp[:, None], np.nan))
        np.testing.assert_array_equal(counts.fnmr, np.where(gen[:, None] > 0, fnm / gen[:, None], np.nan))


@pytest.mark.parametrize("n_samples,n_classes,n_groups", [(12, 3, 2), (80, 10, 2), (150, 12, 3)])
def test_pipeline_from_embeddings_matches_brute_force(n_samples, n_classes, n_groups):
    embeddings, labels, groups = _clustered(n_samples, n_classes, n_groups, seed=n_samples)
    pairs = th.sample_pairs(labels, groups, max_pairs_per_group=200, seed=3)
    thresholds = np.random.default_rng(1).uniform(-1, 1, 17)  # off the score values
    counts = th.pair_error_counts(torch.from_numpy(embeddings), pairs, thresholds)
    z = embeddings.astype(np.float64)
    scores = np.array([z[i] @ z[j] / np.sqrt((z[i] @ z[i]) * (z[j] @ z[j])) for i, j in zip(pairs.first, pairs.second)])
    np.testing.assert_allclose(th.cosine_scores(embeddings, pairs.first, pairs.second), scores, atol=1e-12)
    fm, fnm, _, _ = _brute_counts(scores, pairs.genuine, pairs.group, len(pairs.group_names), thresholds)
    np.testing.assert_array_equal(counts.false_matches, fm)
    np.testing.assert_array_equal(counts.false_non_matches, fnm)


def _all_pairs(labels, groups):
    """Every within-group pair (i < j), brute force, as {(i, j): genuine}."""
    return {
        (i, j): bool(labels[i] == labels[j])
        for i, j in itertools.combinations(range(len(labels)), 2)
        if groups[i] == groups[j]
    }


@pytest.mark.parametrize("enumerate_limit", [th._ENUMERATE_LIMIT, 10])  # exhaustive and rejection paths
@pytest.mark.parametrize("n_samples,cap", [(40, 10_000), (120, 50), (200, 7)])
def test_sampling_is_stratified_capped_and_reproducible(monkeypatch, enumerate_limit, n_samples, cap):
    monkeypatch.setattr(th, "_ENUMERATE_LIMIT", enumerate_limit)
    _, labels, groups = _clustered(n_samples, 8, 2, seed=n_samples)
    pairs = th.sample_pairs(labels, groups, max_pairs_per_group=cap, seed=11)
    valid = _all_pairs(labels, groups)
    names = np.array(pairs.group_names)
    got = list(zip(pairs.first.tolist(), pairs.second.tolist()))
    assert len(set(got)) == len(got), "a pair was drawn twice"
    for (i, j), is_genuine, g in zip(got, pairs.genuine.tolist(), pairs.group.tolist()):
        assert i < j and (i, j) in valid
        assert groups[i] == groups[j] == names[g]
        assert is_genuine == valid[(i, j)] == (labels[i] == labels[j])
    for g, name in enumerate(names):
        in_group = {p: v for p, v in valid.items() if groups[p[0]] == name}
        n_gen = sum(in_group.values())
        n_imp = len(in_group) - n_gen
        assert pairs.available_genuine[g] == n_gen and pairs.available_impostor[g] == n_imp
        assert ((pairs.group == g) & pairs.genuine).sum() == min(cap, n_gen)
        assert ((pairs.group == g) & ~pairs.genuine).sum() == min(cap, n_imp)
        if cap >= len(in_group):
            assert {p for p in got if groups[p[0]] == name} == set(in_group)
    again = th.sample_pairs(labels, groups, max_pairs_per_group=cap, seed=11)
    for field in ("first", "second", "genuine", "group"):
        np.testing.assert_array_equal(getattr(pairs, field), getattr(again, field))
    if cap < 50:
        other = th.sample_pairs(labels, groups, max_pairs_per_group=cap, seed=12)
        assert set(got) != set(zip(other.first.tolist(), other.second.tolist()))


def test_group_pairs_do_not_depend_on_other_groups():
    _, labels, groups = _clustered(90, 9, 3, seed=5)
    full = th.sample_pairs(labels, groups, max_pairs_per_group=20, seed=0)
    keep = np.flatnonzero(groups != "g2")
    part = th.sample_pairs(labels[keep], groups[keep], max_pairs_per_group=20, seed=0)
    for name in ("g0", "g1"):
        a = full.group == full.group_names.index(name)
        b = part.group == part.group_names.index(name)
        np.testing.assert_array_equal(full.first[a], keep[part.first[b]])
        np.testing.assert_array_equal(full.second[a], keep[part.second[b]])


def test_grid_spans_all_to_no_matches():
    rng = np.random.default_rng(0)
    scores = rng.uniform(-0.3, 0.9, 50)
    genuine = np.arange(50) % 2 == 0
    grid = th.threshold_grid(scores)
    counts = th.error_counts(scores, genuine, np.zeros(50, dtype=int), ("a",), grid)
    assert counts.fmr[0, 0] == 1.0 and counts.fnmr[0, 0] == 0.0
    assert counts.fmr[0, -1] == 0.0 and counts.fnmr[0, -1] == 1.0
    np.testing.assert_array_equal(np.diff(grid) > 0, True)


@pytest.mark.parametrize("operating_index", [0, 5, 40, 80])
def test_equal_fmr_thresholds_match_brute_force(operating_index):
    rng = np.random.default_rng(operating_index)
    n = 300
    group = rng.integers(0, 3, n)
    genuine = rng.random(n) < 0.3
    scores = rng.normal(0.3 * genuine + 0.1 * group, 0.2)  # groups have shifted impostor scores
    grid = th.threshold_grid(scores, resolution=50)
    counts = th.error_counts(scores, genuine, group, ("a", "b", "c"), grid)
    result = th.equal_fmr_thresholds(counts, operating_index)
    fm, fnm, imp, gen = _brute_counts(scores, genuine, group, 3, grid)
    target = fm[:, operating_index].sum() / imp.sum()
    assert result["target_fmr"] == target
    for g in range(3):
        k = next(k for k in range(len(grid)) if fm[g, k] / imp[g] <= target)
        assert result["index"][g] == k and result["threshold"][g] == grid[k]
        assert result["fmr"][g] <= target and result["fnmr"][g] == fnm[g, k] / gen[g]
        assert k == 0 or fm[g, k - 1] / imp[g] > target  # the loosest threshold that meets the target


def test_wilson_interval_known_values():
    low, high = th.wilson_interval(np.array([0, 10, 5, 0]), np.array([10, 10, 10, 0]))
    z2 = th.Z_95**2
    assert low[0] == 0.0 and high[0] == pytest.approx(z2 / (10 + z2))  # closed form at k = 0
    assert high[1] == pytest.approx(1.0) and low[1] == pytest.approx(10 / (10 + z2))  # and at k = n
    assert low[2] == pytest.approx(0.2365930, abs=1e-6) and high[2] == pytest.approx(0.7634070, abs=1e-6)
    assert np.isnan(low[3]) and np.isnan(high[3])


def test_browser_data_and_rates_at_index_agree():
    embeddings, labels, groups = _clustered(60, 6, 2, seed=2)
    pairs = th.sample_pairs(labels, groups, max_pairs_per_group=100)
    counts = th.pair_error_counts(embeddings, pairs)
    data = browser_data(counts, operating_index=len(counts.thresholds) // 2)
    rates = th.rates_at_index(counts, data["operating_index"])
    for g, entry in enumerate(data["groups"]):
        k = data["operating_index"]
        expected = rates[entry["name"]]
        assert entry["false_matches"][k] / entry["impostors"] == expected["fmr"] == counts.fmr[g, k]
        assert entry["false_non_matches"][k] / entry["genuines"] == expected["fnmr"] == counts.fnmr[g, k]
        assert len(entry["det_fmr"]) == len(data["thresholds"])
    assert data["thresholds"] == counts.thresholds.tolist()


@pytest.mark.parametrize("seed", [0, 1])
def test_roc_det_points_match_scikit_learn(seed):
    """Per group, at scikit-learn's thresholds: FMR = its fpr, TMR = its tpr, FNMR = its fnr (det_curve)."""
    from sklearn.metrics import det_curve, roc_curve

    rng = np.random.default_rng(seed)
    n = 500
    group = rng.integers(0, 2, n)
    genuine = rng.random(n) < 0.3
    scores = np.round(rng.normal(0.4 * genuine - 0.1 * group, 0.25), 3)  # rounded: tied scores
    for g in range(2):
        in_group = group == g
        fpr, tpr, roc_thresholds = roc_curve(genuine[in_group], scores[in_group], drop_intermediate=False)
        keep = np.isfinite(roc_thresholds)  # scikit-learn prepends +inf (no match)
        counts = th.error_counts(scores, genuine, group, ("a", "b"), roc_thresholds[keep])
        points = th.roc_det_points(counts)[("a", "b")[g]]
        np.testing.assert_allclose(points["fmr"], fpr[keep], rtol=0, atol=1e-15)
        np.testing.assert_allclose(points["tmr"], tpr[keep], rtol=0, atol=1e-15)
        det_fpr, det_fnr, det_thresholds = det_curve(genuine[in_group], scores[in_group])
        counts = th.error_counts(scores, genuine, group, ("a", "b"), det_thresholds)
        np.testing.assert_allclose(counts.fmr[g], det_fpr, rtol=0, atol=1e-15)
        np.testing.assert_allclose(counts.fnmr[g], det_fnr, rtol=0, atol=1e-15)
