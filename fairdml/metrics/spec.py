"""One description per finDML report metric: its name, card label and definition, direction and scope.

Everything else reads these facts from here (torchmetrics keeps `higher_is_better` on the metric itself):
`group_gaps`' worst group, the report's metric order, the card's labels and arrows, the checkpoint monitor's
valid keys and the logger keys. Pure Python, so the card and the CLI can read it without the math.

Why each direction (it decides "worst_group"):
- recall@k, map@r, nmi: higher is better, the worst group has the lowest value.
- inter_alignment: higher is better; the lowest value is the most collapsed group (different classes
  embedded close together), the failure the paper describes for minorities.
- intra_alignment: lower is better (tighter classes); the worst group has the highest value.
- uniformity: lower is better (more evenly spread); the worst group has the highest value (most concentrated).
- attribute_leakage: lower is better (closer to chance); reported overall only.

Per-set and per-query metrics are computed from their specs (`compute`, a "module:function" path the report
imports when it runs), so `register_metric` adds either without touching the report; the built-in specs
(recall@k and mAP@R per query, NMI and the geometry figures per set) are below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Scope = Literal["per_query", "per_set", "overall"]
_SCOPES = ("per_query", "per_set", "overall")  # the report's order
_COMPUTE_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class MetricSpec:
    """A report metric. `scope`: "per_query" is a mean over queries (a group's queries for its value, against
    the whole gallery), "per_set" is computed on a group's samples alone, "overall" has no per-group value.

    `compute` (required for per_set and per_query metrics, None for overall ones): "module:function", imported
    by the report when it runs (this module stays free of torch).
    - per_set: `fn(embeddings (N, D) L2-normalised, labels (N,), settings: ReportSettings) -> float | None`,
      called once on all samples and once per group; None means undefined (say why with a
      `FairnessMetricWarning`: the report lists it under "warnings").
    - per_query: `fn(neighbours: Neighbours, settings: ReportSettings) -> Tensor (c,)`, one value per query,
      called on the report's one shared kNN search (`functional/neighbours.py`, as pytorch-metric-learning's
      `requires_knn`); the report averages the values over all queries and over each group's.
      `k`: the number of nearest neighbours it reads (clamped to the gallery); None reads up to each query's
      R, the other samples of its class (mAP@R).

    Args:
        name: the report's key (`report["groups"][group][name]`); its log key is `log_name(name)`.
        label: the card's column header and definition label.
        definition: one line for the card.
        higher_is_better: decides each gap's worst group and the card's arrow.
        scope: "per_query", "per_set" or "overall".
        compute: "module:function" of a per_set or per_query metric (None for overall ones).
        k: a per_query metric's number of nearest neighbours (None: up to each query's R).

    Example:
        >>> spec = MetricSpec("spread", "Spread", "mean distance to the centroid", higher_is_better=False,
        ...                   scope="per_set", compute="my_package.metrics:spread")
        >>> spec.per_group, log_name("recall@1")
        (True, 'recall_at_1')
    """

    name: str  # report key, e.g. "recall@1" (logged as "recall_at_1")
    label: str  # the card's column header and definition label
    definition: str  # one line for the card
    higher_is_better: bool
    scope: Scope
    compute: str | None = None  # e.g. "fairdml.metrics.functional.set_metrics:nmi"
    k: int | None = None  # per_query only: the nearest neighbours it reads, e.g. 4 for recall@4

    def __post_init__(self) -> None:
        if self.compute is not None and not _COMPUTE_PATH.fullmatch(self.compute):
            raise ValueError(f"metric {self.name!r}: compute must be 'module:function', got {self.compute!r}")
        if (self.compute is not None) != (self.scope != "overall"):
            raise ValueError(
                f"metric {self.name!r}: a per_set or per_query metric needs compute='module:function' and an "
                f"overall one has none (its figure is built into the report); got scope={self.scope!r}, "
                f"compute={self.compute!r}"
            )
        if self.k is not None and (self.scope != "per_query" or type(self.k) is not int or self.k < 1):
            raise ValueError(f"metric {self.name!r}: k is a per_query metric's number of neighbours (an integer "
                             f">= 1, or None for up to R); got k={self.k!r} with scope={self.scope!r}")  # fmt: skip

    @property
    def per_group(self) -> bool:
        """Whether the report has a value per group and a gap for this metric."""
        return self.scope != "overall"


_RECALL = re.compile(r"recall@(\d+)")
_RECALL_LABEL = "Recall@{k}"
_RECALL_DEFINITION = "share of queries with a same-class sample among their k = {k} nearest neighbours (query excluded)"

_SET_METRICS = "fairdml.metrics.functional.set_metrics:"  # the built-in per-set metrics' module
_RETRIEVAL = "fairdml.metrics.functional.retrieval:"  # the built-in per-query metrics' module


def _per_set(name: str, label: str, higher_is_better: bool, definition: str) -> MetricSpec:
    """A built-in per-set metric, computed by the function of its name in `functional/set_metrics.py`."""
    return MetricSpec(name, label, definition, higher_is_better, "per_set", compute=_SET_METRICS + name)


# After recall@k, in report order.
_BUILTIN_SPECS = (
    MetricSpec(
        name="map@r",
        label="mAP@R",
        definition="mean average precision at R, R = the other samples of the query's class",
        higher_is_better=True,
        scope="per_query",
        compute=_RETRIEVAL + "average_precision_at_r_per_query",
    ),
    _per_set(
        "nmi",
        "NMI",
        True,
        "normalised mutual information of k-means clusters (one per class) with the classes",
    ),
    _per_set(
        "inter_alignment",
        "Inter-class alignment",
        True,
        "mean squared distance between classes: much smaller than other groups' = a collapsed group",
    ),
    _per_set(
        "intra_alignment",
        "Intra-class alignment",
        False,
        "mean squared distance within a class: lower = tighter",
    ),
    _per_set(
        "uniformity",
        "Uniformity",
        False,
        "log mean exp(-2 d²) over pairs: lower = spread more evenly",
    ),
    MetricSpec(
        name="attribute_leakage",
        label="Attribute leakage",
        definition="balanced accuracy of a fresh linear probe predicting the group from the embedding (chance = none)",
        higher_is_better=False,
        scope="overall",
    ),
)
_BUILTIN_BY_NAME = {spec.name: spec for spec in _BUILTIN_SPECS}
_REGISTERED: dict[str, MetricSpec] = {}  # name -> spec, in registration order


def _recall_spec(k: int | str) -> MetricSpec:
    name = f"recall@{k}"
    label, definition = _RECALL_LABEL.format(k=k), _RECALL_DEFINITION.format(k=k)
    compute = _RETRIEVAL + "recall_at_k_per_query"
    return MetricSpec(name, label, definition, higher_is_better=True, scope="per_query", compute=compute, k=int(k))


def metric_specs(ks: Sequence[int]) -> list[MetricSpec]:
    """Every metric of a report with these k values, in report order: the per-query metrics (recall@k first),
    the per-set ones, then the overall-only ones (attribute_leakage); registered ones after the built-in of
    their scope."""
    others = [*_BUILTIN_SPECS, *_REGISTERED.values()]
    return [_recall_spec(k) for k in ks] + [spec for scope in _SCOPES for spec in others if spec.scope == scope]


def metric_spec(name: str) -> MetricSpec | None:
    """The spec of a report metric key (recall@<k> for any k); None for other figures (downstream, FMR/FNMR)."""
    match = _RECALL.fullmatch(name)
    if match:
        return _recall_spec(match.group(1))
    return _BUILTIN_BY_NAME.get(name) or _REGISTERED.get(name)


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add a per-set or per-query metric to every report made from now on, in this process (register it where
    your module is imported, so each DDP process has it). The report, its group gaps and worst group, the log
    keys, the checkpoint monitor's valid keys, the card's labels and, for a per-query metric, its bootstrap
    intervals all follow the spec; returns it.

    Args:
        spec: a per_set or per_query `MetricSpec` whose name is new (a built-in or registered name, recall@<k>
            included, is refused).

    Example:
        (docs/extending.md, "A metric" and "A per-query metric", have whole ones)

        >>> spec = MetricSpec("my_spread", "My spread", "what it measures", higher_is_better=False,
        ...                   scope="per_set", compute="my_package.metrics:my_spread")
        >>> register_metric(spec) is spec, metric_spec("my_spread").label
        (True, 'My spread')
        >>> unregister_metric("my_spread").name
        'my_spread'
    """
    if spec.scope == "overall":
        raise ValueError(
            f"metric {spec.name!r}: only per_set and per_query metrics can be registered, got scope='overall'"
        )
    if not spec.name or "/" in spec.name:
        raise ValueError(f"metric name {spec.name!r} must be non-empty and without '/' (it is a log-key part)")
    if metric_spec(spec.name) is not None:
        raise ValueError(f"a metric named {spec.name!r} already exists; unregister_metric({spec.name!r}) first")
    _REGISTERED[spec.name] = spec
    return spec


def unregister_metric(name: str) -> MetricSpec:
    """Remove a metric added by `register_metric` (tests, notebooks) and return its spec; built-ins stay."""
    if name not in _REGISTERED:
        raise ValueError(f"no registered metric {name!r}; registered: {sorted(_REGISTERED)}")
    return _REGISTERED.pop(name)


def higher_is_better(metric: str) -> bool:
    """Direction of a metric key; a figure with no spec (e.g. a downstream accuracy) counts as higher-is-better."""
    spec = metric_spec(metric)
    return spec.higher_is_better if spec is not None else True


# Per-metric summaries over groups, as log-key suffixes, with their direction: "gap" is max - min (lower is
# better), "ratio" min / max and "worst" the worst group's value (higher is better).
GAP_SUMMARIES: dict[str, bool] = {"gap": False, "ratio": True, "worst": True}


def summary_higher_is_better(key: str) -> bool | None:
    """Direction of a log key ending in a gap summary (`.../gap`, `/ratio`, `/worst`); None for other keys (a
    per-group key whose group is named "gap" included: it lives in the `_groups` section)."""
    head, _, suffix = key.rpartition("/")
    if not head or is_groups_section(key.split("/", 1)[0]):
        return None
    return GAP_SUMMARIES.get(suffix)


# Logger keys. MLflow's names are the strictest of Lightning's loggers (letters, digits, `_ - . space` and `/`
# between parts); CSV, TensorBoard and W&B take those too, so one key style serves every logger. W&B makes
# the part before the first `/` a panel section: per-group figures get their own (`val_groups`), so the
# headline figures (`val/recall_at_1`, `.../gap`, `.../worst`) are not lost among one panel per group.
GROUPS_SECTION = "groups"
_LOG_UNSAFE = re.compile(r"[^\w.\- ]")


def log_name(text: str) -> str:
    """A metric, group or attribute name as one part of a logger key: `@` reads `_at_`, a crossed group's `=`
    and `|` read `-` and `.`, any other character MLflow refuses (a `/` too) reads `_`.

    Example:
        >>> log_name("recall@1"), log_name("Male=1|Pale_Skin=0"), log_name("a/b")
        ('recall_at_1', 'Male-1.Pale_Skin-0', 'a_b')
    """
    text = text.replace("@", "_at_").replace("=", "-").replace("|", ".")
    return _LOG_UNSAFE.sub("_", text)


def overall_key(split: str, metric: str, attribute: str | None = None) -> str:
    """`{split}/{metric}` (`{split}/{attribute}/{metric}` for an attribute's marginal figures)."""
    parts = [split] if split else []
    return "/".join([*parts, *([log_name(attribute)] if attribute else []), log_name(metric)])


def group_key(split: str, metric: str, group: str) -> str:
    """`{split}_groups/{metric}/{group}`: one group's figure, in its own W&B section."""
    section = f"{split}_{GROUPS_SECTION}" if split else GROUPS_SECTION
    return f"{section}/{log_name(metric)}/{log_name(group)}"


def is_groups_section(part: str) -> bool:
    return part == GROUPS_SECTION or part.endswith(f"_{GROUPS_SECTION}")


def legacy_log_key(key: str) -> str | None:
    """The current key of a key written in fairdml 0.1's style (`val/recall@1/group=minority`), or None when
    `key` is not one; a config that still names an old key is told the new one instead of failing obscurely.

    Example:
        >>> legacy_log_key("val/recall@1/group=minority"), legacy_log_key("val/map@r/gap")
        ('val_groups/recall_at_1/minority', 'val/map_at_r/gap')
    """
    if "@" not in key and "/group=" not in key:
        return None
    head, sep, group = key.partition("/group=")
    if sep:
        split, _, metric = head.rpartition("/")
        return group_key(split, metric, group)
    return "/".join(log_name(part) for part in key.split("/"))


def check_log_names(names: Sequence[str], what: str) -> None:
    """Two names that read the same as key parts would log into one key: refuse them, naming both."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(log_name(name), name)
        if other != name:
            raise ValueError(
                f"{what} {other!r} and {name!r} both log as {log_name(name)!r} (logger keys allow letters, digits, "
                "'_', '-', '.', ' '); rename one"
            )


@dataclass(frozen=True)
class LogKey:
    """A logged scalar: its key and where its value is in a report (`group` or `summary` set, or neither)."""

    key: str
    metric: str
    group: str | None = None
    summary: str | None = None
    attribute: str | None = None  # set for a marginal group's figure (report["marginals"][attribute])


def report_log_keys(
    split: str,
    overall_metrics: Sequence[str],
    group_names: Sequence[str],
    group_metrics: Sequence[str],
    marginals: Mapping[str, Sequence[str]] | None = None,
) -> list[LogKey]:
    """The logger keys of a report for `split`, in logging order: `{split}/{metric}` (overall),
    `{split}_groups/{metric}/{group}`, then `{split}/{metric}/gap|ratio|worst` per metric with groups. With
    crossed groups, `marginals` (attribute -> its marginal group names) adds `{split}_groups/{metric}/A-1` and
    `{split}/A/{metric}/gap|ratio|worst` per attribute. Names are written by `log_name`
    (`val/recall_at_1/gap`, `val_groups/map_at_r/Male-1.Pale_Skin-0`).

    The one key scheme: `flatten_report` fills these keys with values, `validation_keys` lists them for a
    checkpoint monitor, so a logged key and a key the monitor accepts cannot diverge.
    """
    check_log_names([*overall_metrics, *group_metrics], "metrics")
    sets = [(None, group_names), *((a, names) for a, names in (marginals or {}).items())]
    check_log_names([name for _, names in sets for name in names], "groups")
    keys = [LogKey(overall_key(split, metric), metric) for metric in overall_metrics]
    for attribute, names in sets:
        keys += [
            LogKey(group_key(split, metric, group), metric, group=group, attribute=attribute)
            for group in names
            for metric in group_metrics
        ]
    for attribute, _ in sets:
        keys += [
            LogKey(f"{overall_key(split, metric, attribute)}/{summary}", metric, summary=summary, attribute=attribute)
            for metric in group_metrics
            for summary in GAP_SUMMARIES
        ]
    return keys
