"""The finDML report: every figure overall, per subgroup and as gaps, as one JSON-able dict.

Per-subgroup semantics (the paper's): a query belongs to its own subgroup, the gallery is everyone; the
per-query metrics (recall@k, mAP@R, any registered one) share one kNN search (`neighbours`) and are averaged
over a group's queries; the per-set metrics (NMI, the geometry figures, any registered one) are computed on the
group's samples alone. Each is computed by the function its `MetricSpec.compute` names.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fairdml.metrics.functional._common import (
    FairnessMetricWarning,
    as_tensor,
    check_embeddings,
    check_labels,
    encode_groups,
    l2_normalise,
    warn,
)
from fairdml.metrics.functional.geometry import uniformity_kernel_applies, uniformity_of_union, uniformity_pair_sums
from fairdml.metrics.functional.groups import group_gaps, masked_mean
from fairdml.metrics.functional.intervals import cluster_bootstrap_intervals
from fairdml.metrics.functional.knn import use_faiss
from fairdml.metrics.functional.leakage import attribute_leakage
from fairdml.metrics.functional.neighbours import PerQueryFunction, PerQueryMetric, metrics_phrase, per_query_values
from fairdml.metrics.functional.set_metrics import resolve_report_kmeans
from fairdml.metrics.functional.set_metrics import uniformity as set_metric_uniformity
from fairdml.metrics.functional.stages import GEOMETRY, GROUPS, INTERVALS, OVERALL, collect_stages, stage
from fairdml.metrics.settings import ReportSettings
from fairdml.metrics.spec import MetricSpec, metric_specs
from fairdml.utils.group_names import gap_key, marginal_groups
from fairdml.utils.numbers import strict_json

SetMetric = Callable[[Tensor, Tensor, ReportSettings], "float | None"]  # see MetricSpec.compute


def metric_names(ks: Sequence[int]) -> list[str]:
    """The per-group metric names in report order (attribute_leakage, overall only, is not among them)."""
    return [spec.name for spec in metric_specs(ks) if spec.per_group]


@contextlib.contextmanager
def _warnings_prefixed(prefix: str) -> Iterator[None]:
    """Re-issue the metric warnings raised inside with `prefix`, so a message names its group."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FairnessMetricWarning)
        yield
    for item in caught:
        if issubclass(item.category, FairnessMetricWarning):
            warn(f"{prefix}{item.message}")
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)


@functools.cache
def _import_compute(path: str) -> SetMetric | PerQueryFunction:
    """The function a "module:function" path names (cached: a report calls it once per group)."""
    module_name, _, function_name = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ImportError(f"cannot import the metric function {path!r}: {error}") from error


def _metric_functions(specs: Sequence[MetricSpec], scope: str) -> dict[str, Any]:
    """name -> function of each metric of `scope`, imported before any work so a bad path fails at once."""
    functions = {}
    for spec in specs:
        if spec.scope == scope:
            try:
                functions[spec.name] = _import_compute(spec.compute)
            except ImportError as error:
                raise ImportError(f"metric {spec.name!r}: {error}") from error
    return functions


def _set_metrics(
    functions: dict[str, SetMetric], embeddings: Tensor, labels: Tensor, settings: ReportSettings
) -> dict[str, float | None]:
    """Every per-set metric on one set of samples (overall or a group's)."""
    values = {name: function(embeddings, labels, settings) for name, function in functions.items()}
    return {name: None if value is None else float(value) for name, value in values.items()}


def fairness_report(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    groups: Tensor | np.ndarray | Sequence,
    settings: ReportSettings | None = None,
    group_names: Sequence[str] | None = None,
    **options: Any,
) -> dict:
    """finDML report of (N, D) embeddings with (N,) class labels and (N,) subgroups (codes or strings).

    `settings` (a `ReportSettings`; default: its defaults) holds every option; keyword `options` (ks=, seed=,
    leakage=, min_group_size=, ...) build or override it, as the report's keywords always did. An invalid
    option raises before any work.

    Embeddings are L2-normalised first (the paper's Z; a no-op for a normalised head). NaN/inf rows raise a
    ValueError naming how many. Edge cases (empty group, single-sample class, k > gallery, single group,
    single-class group) give None / clamped values, a `FairnessMetricWarning`, and an entry in "warnings".
    `bootstrap_resamples` > 0 (default 1000) adds "intervals": metric -> {"overall", <group>, "gap" (and
    "gap:<attribute>" for crossed groups' marginals): [low, high]}, 95 % intervals of recall@k and map@r from
    a class-level bootstrap (`intervals.cluster_bootstrap_intervals`: classes are resampled, the gallery is
    fixed): expanded percentile intervals overall and per group, a test-inversion interval of each gap
    (settings.interval_method).
    `kmeans_backend` "sklearn" (k-means++, default) or "faiss" (PML's clustering, faster at large N).
    `min_group_size`: a group with 0 < n < min_group_size is "small": its figures are mostly noise, so its
    entry gets `"small": true`, "warnings" names it, and it is not picked as a gap's "worst_group" while a
    larger group has a value (`group_gaps` documents the gap keys added then). 1 flags no group (the old
    behaviour); a report without small groups has exactly the old keys, plus settings.min_group_size.

    Args:
        embeddings: (N, D) float, torch or NumPy.
        labels: (N,) class of each sample.
        groups: (N,) subgroup of each sample: integer codes into `group_names`, or the names themselves.
        settings: the report's options (`ReportSettings`); keyword `options` build or override it.
        group_names: the name of each group code (default: the sorted distinct values of `groups`).

    Returns:
        A JSON-ready dict: "n", "overall", "groups" (per group: "n" and every per-group metric), "gaps" (per
        metric: max_minus_min, min_over_max, worst_group), "settings", "excluded", "chance_level",
        "warnings" (docs/architecture.md, "Report JSON").

    Example:
        >>> import torch
        >>> labels = torch.arange(10).repeat_interleave(4)  # 10 classes of 4
        >>> groups = (labels >= 5).long()  # classes 5-9 form the second group
        >>> embeddings = torch.nn.functional.one_hot(labels, 10).float()  # a perfect embedding
        >>> embeddings[groups == 1] += 0.8 * torch.randn(20, 10, generator=torch.Generator().manual_seed(0))
        >>> report = fairness_report(embeddings, labels, groups, group_names=["a", "b"], ks=(1,), leakage=False)
        >>> report["groups"]["a"]["recall@1"], report["gaps"]["recall@1"]["worst_group"]
        (1.0, 'b')
    """
    settings = ReportSettings.build(settings, **options)
    with warnings.catch_warnings(record=True) as caught, collect_stages() as timings:
        warnings.simplefilter("always", FairnessMetricWarning)
        report = _build_report(embeddings, labels, groups, settings, group_names)
    messages = []
    for item in caught:
        if issubclass(item.category, FairnessMetricWarning) and str(item.message) not in messages:
            messages.append(str(item.message))
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    report["warnings"] = messages
    if settings.timings:  # opt-in: seconds differ run to run, and reports are compared byte for byte
        report["timings"] = timings
    return strict_json(report)


def _build_report(embeddings, labels, groups, settings: ReportSettings, group_names) -> dict:
    specs = metric_specs(settings.ks)
    query_functions = _metric_functions(specs, "per_query")  # fail before the expensive retrieval, not after it
    set_functions: dict[str, SetMetric] = _metric_functions(specs, "per_set")
    x = check_embeddings(as_tensor(embeddings, "embeddings"))
    n = x.shape[0]
    y = check_labels(as_tensor(labels, "labels"), n).to(x.device)
    codes, names = encode_groups(groups, group_names, n)
    codes = codes.to(x.device)
    ks = settings.ks
    settings = resolve_report_kmeans(settings, y)  # "auto": one k-means for every set, groups compare alike
    z = l2_normalise(x)

    query_metrics = [PerQueryMetric(s.name, query_functions[s.name], s.k) for s in specs if s.scope == "per_query"]
    retrieval = per_query_values(z, y, query_metrics, settings)  # one kNN search for every per-query metric
    per_query = retrieval.values  # name -> (N,) values, NaN for queries without a positive
    everyone = torch.ones(n, dtype=torch.bool, device=x.device)

    shared = _shared_uniformity(set_functions, z, codes, len(names), settings)

    def set_figures(mask: Tensor, members: list[int]) -> dict[str, float | None]:
        """Every per-set metric of the samples under `mask` (the union of groups `members`); uniformity from
        the one shared pass when the report has one."""
        if shared is None:
            return _set_metrics(set_functions, z[mask], y[mask], settings)
        others = {name: f for name, f in set_functions.items() if name != "uniformity"}
        values = _set_metrics(others, z[mask], y[mask], settings)
        values["uniformity"] = uniformity_of_union(*shared, members)
        if values["uniformity"] is None:
            warn(f"uniformity is undefined for a set of {int(mask.sum())} sample(s); reported as None")
        return {name: values[name] for name in set_functions}  # the specs' order, as the per-set path gives

    overall = {name: masked_mean(values, everyone) for name, values in per_query.items()}
    with stage(OVERALL):
        overall |= set_figures(everyone, list(range(len(names))))
    chance, leakage_split = None, None
    if settings.leakage:
        probe = attribute_leakage(z, codes, y, seed=settings.seed)
        overall["attribute_leakage"], chance = probe.balanced_accuracy, probe.chance_level
        leakage_split = probe.split
    else:
        overall["attribute_leakage"] = None

    group_specs = [spec for spec in specs if spec.per_group]

    def group_entry(name: str, mask: Tensor, members: list[int]) -> dict:
        """One group's figures: its queries' retrieval means and the per-set metrics of its samples."""
        n_group = int(mask.sum())
        entry: dict = {"n": n_group}
        if 0 < n_group < settings.min_group_size:
            entry["small"] = True
        if n_group == 0:
            warn(f"group {name!r} has no samples; its metrics are None")
            return entry | dict.fromkeys(spec.name for spec in group_specs)
        with _warnings_prefixed(f"group {name!r}: "):
            for metric, values in per_query.items():
                entry[metric] = masked_mean(values, mask)
            if not (mask & retrieval.has_positive).any():
                warn(f"no query has a positive in the gallery; {metrics_phrase(list(per_query))} are None")
            entry |= set_figures(mask, members)
        return entry

    group_entries, excluded_by_group = {}, {}
    marginals = marginal_groups(names) or {}  # crossed groups ("A=1|B=0"): each attribute's own groups as well
    marginal_codes = {attribute: _marginal_codes(members, codes) for attribute, members in marginals.items()}
    with stage(GROUPS):  # every group's and marginal group's figures (their clustering and geometry inside)
        for code, name in enumerate(names):
            mask = codes == code
            excluded_by_group[name] = int((mask & ~retrieval.has_positive).sum())
            group_entries[name] = group_entry(name, mask, [code])
        min_size = settings.min_group_size
        marginal_entries = {
            attribute: _marginal(members, *marginal_codes[attribute], group_entry, group_specs, min_size)
            for attribute, members in marginals.items()
        }

    report = {
        "n": n,
        "overall": overall,
        "groups": group_entries,
        "gaps": _gaps(group_entries, group_specs, settings.min_group_size),
        "excluded": {
            "queries_without_positive": int((~retrieval.has_positive).sum()),
            "queries_without_positive_by_group": excluded_by_group,
        },
        "chance_level": {"attribute_leakage": chance},
        "settings": settings.as_report({k: retrieval.effective_k[f"recall@{k}"] for k in ks}, leakage_split),
    }
    if settings.knn_backend != "torch":  # an audit's "auto": record which search ran (the default run's: torch)
        report["settings"]["knn_backend"] = "faiss" if use_faiss(z, settings.knn_backend) else "torch"
    if marginals:
        report["marginals"] = marginal_entries
    if settings.bootstrap_resamples > 0:  # classes resampled, the unit of a class-disjoint split
        sets = {gap_key(): (codes, names)} | {gap_key(a): marginal_codes[a] for a in marginals}
        with stage(INTERVALS):
            report["intervals"] = cluster_bootstrap_intervals(
                per_query, y, sets, settings.bootstrap_resamples, settings.confidence, settings.seed
            )
    return report


def _shared_uniformity(
    set_functions: dict[str, SetMetric], z: Tensor, codes: Tensor, n_groups: int, settings: ReportSettings
) -> tuple[Tensor, Tensor] | None:
    """For a large report with the built-in uniformity: the (G, G) kernel sums of one pass over all pairs and
    the groups' sizes, from which overall, every group and every marginal group take their uniformity (one N^2
    pass instead of one per set). None otherwise: each set computes its own, as `uniformity` does."""
    if set_functions.get("uniformity") is not set_metric_uniformity or not uniformity_kernel_applies(z):
        return None
    with stage(GEOMETRY):
        sums = uniformity_pair_sums(z, codes, n_groups, memory_budget_bytes=settings.memory_budget_bytes)
    return sums, torch.bincount(codes, minlength=n_groups)


def _marginal_codes(members: dict[str, list[int]], codes: Tensor) -> tuple[Tensor, list[str]]:
    """Each sample's marginal group code, from its crossed group's code."""
    lookup = torch.empty(sum(len(crossed) for crossed in members.values()), dtype=torch.long)  # they partition
    for marginal, crossed in enumerate(members.values()):
        lookup[crossed] = marginal
    return lookup.to(codes.device)[codes], list(members)


def _marginal(
    members: dict[str, list[int]],
    marginal_codes: Tensor,
    marginal_names: list[str],
    group_entry: Callable[[str, Tensor, list[int]], dict],
    group_specs: Sequence[MetricSpec],
    min_group_size: int,
) -> dict:
    """One attribute's marginal groups (each the union of its crossed groups, `_marginal_codes`) and their gaps."""
    entries = {name: group_entry(name, marginal_codes == m, members[name]) for m, name in enumerate(marginal_names)}
    return {"groups": entries, "gaps": _gaps(entries, group_specs, min_group_size)}


def _gaps(group_entries: dict[str, dict], group_specs: Sequence[MetricSpec], min_group_size: int) -> dict:
    """Gap, ratio and worst group per metric; warns about a lone group and each small group first."""
    populated = [name for name, entry in group_entries.items() if entry["n"] > 0]
    if len(populated) == 1:
        warn(f"only one group ({populated[0]!r}) has samples: gaps are 0 and ratios 1 by definition")
    small = [name for name, entry in group_entries.items() if entry.get("small")]
    for name in small:
        warn(
            f"group {name!r} is small: n={group_entries[name]['n']} < min_group_size={min_group_size}; its "
            "figures are uncertain and it is not picked as worst_group while a larger group has a value"
        )
    return {
        spec.name: group_gaps(
            {g: e[spec.name] for g, e in group_entries.items()}, spec.higher_is_better, small_groups=small or None
        )
        for spec in group_specs
    }
