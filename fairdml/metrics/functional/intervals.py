"""Class-level (cluster) bootstrap intervals of the per-query retrieval figures, per group and of the gaps.

A DML test split is a sample of *classes* (identities), not of independent images: the images of one class
share its difficulty, so resampling queries one by one understates the uncertainty. Each resample draws the
split's classes with replacement and weights every query by its class's multiplicity; the gallery stays
fixed (the figures are the queries' means). Per resample, a group's figure is the weighted mean over its
queries. Overall and per group: expanded percentile intervals (`expanded_confidence`), since with 10-15 classes
a group's plain percentile interval covers ~91 %.

The gap (max - min over the groups) gets its own interval by test inversion (`gap_interval`) rather than
percentiles: a range cannot go below 0, so the percentile interval of the resampled max - min sat above the
observed gap whenever the groups were close and almost never covered a true gap of 0. Coverage measured by
simulation: docs/model_card.md, "The gap's interval" (issue 27).

Cost: per metric one (R, C) @ (C, G) product for R resamples, C classes, G groups; the draws are made once; the
gap's interval adds ~40 (R, G) passes of a bisection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

OVERALL = "overall"
# report["settings"]["interval_method"]: what made report["intervals"] (issue 27 changed it from plain percentiles)
INTERVAL_METHOD = (
    "class bootstrap; overall and groups: expanded percentile (Hesterberg 2015); gaps: test inversion (Carpenter 1999)"
)


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


def class_membership(values: Tensor, class_index: Tensor, codes: Tensor, n_groups: int, n_classes: int) -> Tensor:
    """(C, G) 1 where class c holds a query of group g with a value: whose classes make each group's mean."""
    keep = ~torch.isnan(values.detach().cpu())
    cells = class_index.cpu()[keep] * n_groups + codes.cpu()[keep]
    members = torch.zeros(n_classes * n_groups, dtype=torch.float64).index_fill_(0, cells, 1.0)
    return members.view(n_classes, n_groups)


def variance_ratio(counts: Tensor, members: Tensor) -> Tensor:
    """(G,) the class bootstrap's variance of a group's mean over the unbiased s^2 / n of its n classes.

    A resample draws all C classes, so a group's share N* of them varies: given N*, its mean's variance is
    (n - 1) / n s^2 / N*, hence the ratio (n - 1) E*[1 / N*] over the resamples that hold the group ((n - 1) / n
    when every resample holds all n, as for the overall mean). 1 below two classes (no s^2).
    """
    n = members.sum(dim=0)
    drawn = counts @ members  # (R, G): N*
    inverse = torch.where(drawn > 0, 1 / drawn.clamp_min(1), torch.nan).nanmean(dim=0)
    return torch.where(n > 1, (n - 1) * inverse, torch.ones_like(n))


def expanded_confidence(confidence: float, n: int, ratio: float | None = None) -> float:
    """The level at which percentiles of the class bootstrap give the expanded percentile interval of a mean of
    n classes (Hesterberg 2015, The American Statistician 69:371-386): the normal quantile of the level is
    t_{n-1} / sqrt(`ratio`), the bootstrap variance made unbiased (`variance_ratio`; (n - 1) / n by default) and
    the t quantile for an estimated variance. Why: with 10-15 classes a group's plain 95 % percentile interval
    covers ~91 % (docs/model_card.md, "The gap's interval"). `confidence` itself below two classes."""
    if n < 2:
        return confidence
    from scipy.special import ndtr, stdtrit  # scikit-learn's dependency; loaded only where intervals are made

    ratio = (n - 1) / n if ratio is None else ratio
    return float(1 - 2 * ndtr(-stdtrit(n - 1, (1 + confidence) / 2) / math.sqrt(ratio)))


def small_sample_scale(classes: Tensor, ratio: Tensor, confidence: float) -> Tensor:
    """(..., G) factors on the groups' bootstrap deviations for the gap, the expansion of `expanded_confidence`
    for a statistic of several groups: 1 / sqrt(ratio) per group (`variance_ratio`), times t_df / z with
    df = sum(n - 1) over the groups (the pooled variance of a difference of group means)."""
    from scipy.special import ndtri, stdtrit

    classes, ratio = classes.double(), ratio.double()
    df = (classes - 1).clamp_min(0).sum(dim=-1, keepdim=True)
    level = (1 + confidence) / 2
    t_over_z = torch.as_tensor(stdtrit(df.clamp_min(1).numpy(), level) / ndtri(level), dtype=torch.float64)
    return ratio.rsqrt() * torch.where(df >= 1, t_over_z, torch.ones_like(t_over_z))


def gap_draws(means: Tensor) -> Tensor:
    """(..., R) max - min over the groups with a value in each resample of (..., R, G) means (NaN where none
    has one)."""
    defined = ~torch.isnan(means)
    high = torch.where(defined, means, torch.full_like(means, -torch.inf)).amax(dim=-1)
    low = torch.where(defined, means, torch.full_like(means, torch.inf)).amin(dim=-1)
    return torch.where(defined.any(dim=-1), high - low, torch.full_like(high, float("nan")))


def extreme_groups(means: Tensor) -> tuple[Tensor, Tensor]:
    """(...,) indices of the best and of the worst group with a value in (..., G) means; distinct groups when
    two or more have one (ties: the first maximum, then the first minimum among the others)."""
    defined = ~torch.isnan(means)
    high = torch.where(defined, means, torch.full_like(means, -torch.inf)).argmax(dim=-1, keepdim=True)
    others = defined.scatter(-1, high, False)
    low = torch.where(others, means, torch.full_like(means, torch.inf)).argmin(dim=-1, keepdim=True)
    return high[..., 0], low[..., 0]


def gap_interval(
    means: Tensor, draws: Tensor, confidence: float, scale: Tensor | None = None, iterations: int = 40
) -> Tensor:
    """(..., 2) interval of the gap, max - min of the groups' true means, by inverting a bootstrap test.

    Why not percentiles: the resampled max - min is biased upwards (the range of noisy means exceeds the range of
    the true ones) and cannot go below 0, so its percentile interval misses small true gaps (a true gap of 0
    almost always) and can lie wholly above the observed gap. Instead a candidate gap theta >= 0 stays in the
    interval when a bootstrap test at theta accepts the observed gap T (the test-inversion bootstrap, Carpenter
    1999, JRSS-B 61:159-172; a Neyman construction). The model at theta is `null_means` (the group means closest
    to the observed ones with range theta) plus the bootstrap deviations m* - m of the group means; its resampled
    gaps are their ranges. The acceptance region [a(theta), b(theta)] holds `confidence` of them: a(theta) =
    max(0, theta + the alpha/2 quantile of the best minus the worst group's deviation), the lower tail of the
    signed difference, and b(theta) so that the region holds 1 - alpha. For a large gap this is the usual
    two-sided test; near theta = 0, a is 0 and the test one-sided, so the interval reaches 0 exactly when the
    data are compatible with no gap, with no jump between theta = 0 and theta > 0. The upper end is T minus that
    quantile; the lower end a bisection (the region moves up with theta).

    Args:
        means: (..., G) the groups' means in the full sample (NaN: the group has no value).
        draws: (..., R, G) their resampled means (NaN where a resample holds none of the group's classes).
        confidence: the level, e.g. 0.95.
        scale: (..., G) factors on the deviations, `small_sample_scale` (without them the interval covers
            ~92 % with 10-15 classes per group). None: not expanded.
        iterations: bisection steps of the lower end (40: below 1e-12 of the upper end).

    Returns:
        (..., 2) [low, high]; [0, 0] where one group has a value, NaN where none has.
    """
    means, draws = means.double(), draws.double()
    alpha = 1 - confidence
    n_defined = (~torch.isnan(means)).sum(dim=-1)
    gap = gap_draws(means.unsqueeze(-2)).squeeze(-1)
    high, low = extreme_groups(means)
    deviations = draws - means.unsqueeze(-2)
    if scale is not None:
        deviations = deviations * scale.double().unsqueeze(-2)
    weights = deviations.pow(2).nanmean(dim=-2).clamp_min(1e-12).reciprocal()  # 1 / the bootstrap variances
    signed = _pick(deviations, high) - _pick(deviations, low)  # (..., R): best minus worst group's deviation
    tail = torch.nanquantile(signed, alpha / 2, dim=-1) if signed.numel() else signed.sum(dim=-1)
    upper = gap - tail

    def accepted(theta: Tensor) -> Tensor:
        """T <= b(theta): at most 1 - alpha of the resampled gaps lie in [a(theta), T)."""
        resampled = gap_draws(null_means(theta, means, weights, high, low).unsqueeze(-2) + deviations)
        floor = (theta + tail).clamp_min(0).unsqueeze(-1)
        between = ((resampled >= floor) & (resampled < gap.unsqueeze(-1))).sum(dim=-1)
        return between <= (1 - alpha) * (~torch.isnan(resampled)).sum(dim=-1)

    at_zero = accepted(torch.zeros_like(gap))
    rejected, kept = torch.zeros_like(gap), upper.clamp_min(0)
    for _ in range(0 if bool(at_zero.all()) else iterations):
        middle = (rejected + kept) / 2
        ok = accepted(middle)
        kept, rejected = torch.where(ok, middle, kept), torch.where(ok, rejected, middle)
    lower = torch.where(at_zero, torch.zeros_like(gap), kept)
    out = torch.stack([lower, upper.clamp_min(lower)], dim=-1)
    out = torch.where((n_defined == 1).unsqueeze(-1), torch.zeros_like(out), out)
    return torch.where((n_defined == 0).unsqueeze(-1), torch.full_like(out, float("nan")), out)


def null_means(theta: Tensor, means: Tensor, weights: Tensor, high: Tensor, low: Tensor) -> Tensor:
    """(..., G) the group means with range theta closest to the observed (..., G) `means` in least squares
    weighted by `weights`: group `high` at c + theta, group `low` at c, every other clamped into [c, c + theta];
    returned minus c (NaN where a mean is NaN).

    Why: a bootstrap test resamples from the model fitted under its null (Hall & Wilson 1991, Biometrics
    47:757-762), so the other groups' positions, a nuisance, are fitted with the gap held at theta. Below the
    observed gap this lets a group close to the best (worst) one tie with it, as it may in truth, and the
    maximum (minimum) of tied noisy means inflates the gap. The objective's slope in c is piecewise linear and
    rising, with kinks at each m and m - theta: its zero is interpolated between the kinks around it, exactly.
    """
    defined = ~torch.isnan(means)
    observed, weights = torch.where(defined, means, 0.0), torch.where(defined, weights, 0.0)
    groups = torch.arange(means.shape[-1])
    is_high, is_low = groups == high.unsqueeze(-1), groups == low.unsqueeze(-1)
    span = theta.unsqueeze(-1)

    def fitted(c: Tensor) -> Tensor:  # (..., K) candidates of c -> (..., K, G)
        c, top = c.unsqueeze(-1), (c + span).unsqueeze(-1)
        clamped = torch.minimum(torch.maximum(observed.unsqueeze(-2), c), top)
        return torch.where(is_high.unsqueeze(-2), top, torch.where(is_low.unsqueeze(-2), c, clamped))

    lowest = torch.where(defined, observed, torch.inf).amin(dim=-1, keepdim=True)
    kinks = torch.cat([observed - span, observed, lowest - span], dim=-1)  # lowest - theta: slope <= 0 there
    kinks = torch.where(torch.cat([defined, defined, torch.ones_like(lowest, dtype=torch.bool)], -1), kinks, lowest)
    kinks = kinks.sort(dim=-1).values
    slopes = (weights.unsqueeze(-2) * (fitted(kinks) - observed.unsqueeze(-2))).sum(dim=-1)  # rising in c
    after = (slopes < 0).sum(dim=-1, keepdim=True).clamp(1, kinks.shape[-1] - 1)  # first kink with slope >= 0
    left, right = kinks.gather(-1, after - 1), kinks.gather(-1, after)
    rise_left, rise_right = slopes.gather(-1, after - 1), slopes.gather(-1, after)
    step = torch.where(rise_right > rise_left, (right - left) / (rise_right - rise_left), 0.0)
    c = torch.where(rise_left >= 0, left, left - rise_left * step)
    return torch.where(defined, fitted(c).squeeze(-2) - c, float("nan"))


def _pick(x: Tensor, index: Tensor) -> Tensor:
    """x[..., index] for a (...,) index of the last dimension, broadcast over x's middle dimensions."""
    index = index.view(*index.shape, *([1] * (x.dim() - index.dim()))).expand(*x.shape[:-1], 1)
    return x.gather(-1, index)[..., 0]


def cluster_bootstrap_intervals(
    per_query: Mapping[str, Tensor],
    labels: Tensor,
    group_sets: Mapping[str, tuple[Tensor, Sequence[str]]],
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, dict[str, list[float] | None]]:
    """Intervals of every per-query metric: overall and each group of each set (expanded percentile intervals,
    `expanded_confidence`), and each set's gap (`gap_interval`: test inversion).

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
    whole = torch.ones(1, counts.shape[1], dtype=torch.float64)  # the split itself: each class once
    out: dict[str, dict[str, list[float] | None]] = {}
    for metric, values in per_query.items():
        entry = _set_intervals(values, class_index, everyone, [OVERALL], counts, whole, confidence, None)
        for gap_key, (codes, names) in group_sets.items():
            entry |= _set_intervals(values, class_index, codes, names, counts, whole, confidence, gap_key)
        out[metric] = entry
    return out


def _set_intervals(
    values: Tensor,
    class_index: Tensor,
    codes: Tensor,
    names: Sequence[str],
    counts: Tensor,
    whole: Tensor,
    confidence: float,
    gap_key: str | None,
) -> dict[str, list[float] | None]:
    """One set of groups: each group's expanded percentile interval and, under `gap_key`, the gap's."""
    draws = resampled_group_means(values, class_index, codes, len(names), counts)
    members = class_membership(values, class_index, codes, len(names), counts.shape[1])
    classes, ratio = members.sum(dim=0), variance_ratio(counts, members)
    levels = [expanded_confidence(confidence, int(n), float(r)) for n, r in zip(classes, ratio)]
    out = {name: percentile_interval(draws[:, g], levels[g]) for g, name in enumerate(names)}
    if gap_key is not None:
        observed = resampled_group_means(values, class_index, codes, len(names), whole)[0]
        scale = small_sample_scale(classes, ratio, confidence)
        low, high = gap_interval(observed, draws, confidence, scale).tolist()
        out[gap_key] = None if math.isnan(low) else [low, high]
    return out
