"""The finDML report: every figure overall, per subgroup and as gaps, as one JSON-able dict.

Per-subgroup semantics (the paper's): a query belongs to its own subgroup, the gallery is everyone; NMI and
the geometry figures are computed on the group's samples alone.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from fairdml.metrics.functional._common import (
    DEFAULT_MEMORY_BUDGET_BYTES,
    FairnessMetricWarning,
    as_tensor,
    check_embeddings,
    check_labels,
    encode_groups,
    l2_normalise,
    warn,
)
from fairdml.metrics.functional.clustering import check_kmeans_backend, kmeans_nmi
from fairdml.metrics.functional.geometry import inter_class_alignment, intra_class_alignment, uniformity
from fairdml.metrics.functional.groups import group_gaps, group_intervals, masked_mean
from fairdml.metrics.functional.leakage import attribute_leakage
from fairdml.metrics.functional.retrieval import retrieval_per_query
from fairdml.metrics.spec import metric_specs
from fairdml.numbers import strict_json

DEFAULT_MIN_GROUP_SIZE = 30  # samples below which a group's figures are flagged as noise-prone ("small")


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


def _set_metrics(
    embeddings: Tensor, labels: Tensor, seed: int, n_init: int, kmeans_backend: str, memory_budget_bytes: int
) -> dict[str, float | None]:
    """NMI and geometry on one set of samples (overall or a group's)."""
    return {
        "nmi": kmeans_nmi(embeddings, labels, seed=seed, n_init=n_init, backend=kmeans_backend),
        "inter_alignment": inter_class_alignment(embeddings, labels),
        "intra_alignment": intra_class_alignment(embeddings, labels),
        "uniformity": uniformity(embeddings, memory_budget_bytes=memory_budget_bytes),
    }


def check_min_group_size(value: int) -> int:
    """`min_group_size` as an int >= 1; checked before any work so a typo fails at once."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"min_group_size must be an integer >= 1 (1 flags no group as small), got {value!r}")
    return int(value)




def fairness_report(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    groups: Tensor | np.ndarray | Sequence,
    ks: Sequence[int] = (1, 2, 4, 8),
    seed: int = 0,
    group_names: Sequence[str] | None = None,
    leakage: bool = True,
    *,
    distance: str = "euclidean",
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    n_init: int = 1,
    kmeans_backend: str = "sklearn",
    bootstrap_resamples: int = 0,
    confidence: float = 0.95,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> dict:
    """finDML report of (N, D) embeddings with (N,) class labels and (N,) subgroups (codes or strings).

    Embeddings are L2-normalised first (the paper's Z; a no-op for a normalised head). NaN/inf rows raise a
    ValueError naming how many. Edge cases (empty group, single-sample class, k > gallery, single group,
    single-class group) give None / clamped values, a `FairnessMetricWarning`, and an entry in "warnings".
    `bootstrap_resamples` > 0 adds percentile intervals of recall@k and map@r under "intervals".
    `kmeans_backend` "sklearn" (k-means++, default) or "faiss" (PML's clustering, faster at large N).
    `min_group_size`: a group with 0 < n < min_group_size is "small": its figures are mostly noise, so its
    entry gets `"small": true`, "warnings" names it, and it is not picked as a gap's "worst_group" while a
    larger group has a value (`group_gaps` documents the gap keys added then). 1 flags no group (the old
    behaviour); a report without small groups has exactly the old keys, plus settings.min_group_size.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FairnessMetricWarning)
        report = _build_report(
            embeddings, labels, groups, ks, seed, group_names, leakage,
            distance, memory_budget_bytes, n_init, kmeans_backend, bootstrap_resamples, confidence,
            min_group_size,
        )  # fmt: skip
    messages = []
    for item in caught:
        if issubclass(item.category, FairnessMetricWarning) and str(item.message) not in messages:
            messages.append(str(item.message))
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    report["warnings"] = messages
    return strict_json(report)


def _build_report(
    embeddings, labels, groups, ks, seed, group_names, leakage,
    distance, memory_budget_bytes, n_init, kmeans_backend, bootstrap_resamples, confidence, min_group_size,
) -> dict:  # fmt: skip
    check_kmeans_backend(kmeans_backend)  # fail before the expensive retrieval, not after it
    min_group_size = check_min_group_size(min_group_size)
    x = check_embeddings(as_tensor(embeddings, "embeddings"))
    n = x.shape[0]
    y = check_labels(as_tensor(labels, "labels"), n).to(x.device)
    codes, names = encode_groups(groups, group_names, n)
    codes = codes.to(x.device)
    ks = list(dict.fromkeys(int(k) for k in ks))
    z = l2_normalise(x)
    group_specs = [spec for spec in metric_specs(ks) if spec.per_group]

    retrieval = retrieval_per_query(z, y, ks, distance=distance, memory_budget_bytes=memory_budget_bytes)
    per_query = {f"recall@{k}": retrieval.recall[k] for k in ks}
    per_query["map@r"] = retrieval.map_at_r
    everyone = torch.ones(n, dtype=torch.bool, device=x.device)

    overall = {name: masked_mean(values, everyone) for name, values in per_query.items()}
    overall |= _set_metrics(z, y, seed, n_init, kmeans_backend, memory_budget_bytes)
    chance, leakage_split = None, None
    if leakage:
        probe = attribute_leakage(z, codes, y, seed=seed)
        overall["attribute_leakage"], chance = probe.balanced_accuracy, probe.chance_level
        leakage_split = probe.split
    else:
        overall["attribute_leakage"] = None

    group_entries, excluded_by_group = {}, {}
    for code, name in enumerate(names):
        mask = codes == code
        n_group = int(mask.sum())
        entry: dict = {"n": n_group}
        if 0 < n_group < min_group_size:
            entry["small"] = True
        excluded_by_group[name] = int((mask & ~retrieval.has_positive).sum())
        if n_group == 0:
            warn(f"group {name!r} has no samples; its metrics are None")
            entry |= dict.fromkeys(spec.name for spec in group_specs)
        else:
            with _warnings_prefixed(f"group {name!r}: "):
                for metric, values in per_query.items():
                    entry[metric] = masked_mean(values, mask)
                if entry[f"recall@{ks[0]}"] is None:
                    warn("no query has a positive in the gallery; recall@k and map@r are None")
                entry |= _set_metrics(z[mask], y[mask], seed, n_init, kmeans_backend, memory_budget_bytes)
        group_entries[name] = entry

    populated = [name for name, entry in group_entries.items() if entry["n"] > 0]
    if len(populated) == 1:
        warn(f"only one group ({populated[0]!r}) has samples: gaps are 0 and ratios 1 by definition")
    small = [name for name, entry in group_entries.items() if entry.get("small")]
    for name in small:
        warn(
            f"group {name!r} is small: n={group_entries[name]['n']} < min_group_size={min_group_size}; its "
            "figures are uncertain and it is not picked as worst_group while a larger group has a value"
        )
    gaps = {
        spec.name: group_gaps(
            {g: e[spec.name] for g, e in group_entries.items()}, spec.higher_is_better, small_groups=small or None
        )
        for spec in group_specs
    }
    report = {
        "n": n,
        "overall": overall,
        "groups": group_entries,
        "gaps": gaps,
        "excluded": {
            "queries_without_positive": int((~retrieval.has_positive).sum()),
            "queries_without_positive_by_group": excluded_by_group,
        },
        "chance_level": {"attribute_leakage": chance},
        "settings": {
            "ks": ks,
            "effective_ks": {str(k): v for k, v in retrieval.effective_ks.items()},
            "seed": seed,
            "distance": distance,
            "kmeans_n_init": n_init,
            "kmeans_backend": kmeans_backend,
            "alpha": 2,
            "t": 2,
            "leakage": leakage,
            "leakage_split": leakage_split,
            "bootstrap_resamples": bootstrap_resamples,
            "min_group_size": min_group_size,
        },
    }
    if bootstrap_resamples > 0:
        report["intervals"] = group_intervals(per_query, codes, names, bootstrap_resamples, confidence, seed)
        report["settings"]["confidence"] = confidence
    return report
