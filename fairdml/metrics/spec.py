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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Scope = Literal["per_query", "per_set", "overall"]


@dataclass(frozen=True)
class MetricSpec:
    """A report metric. `scope`: "per_query" is a mean over queries (a group's queries for its value, against
    the whole gallery), "per_set" is computed on a group's samples alone, "overall" has no per-group value."""

    name: str  # report and log key, e.g. "recall@1"
    label: str  # the card's column header and definition label
    definition: str  # one line for the card
    higher_is_better: bool
    scope: Scope

    @property
    def per_group(self) -> bool:
        """Whether the report has a value per group and a gap for this metric."""
        return self.scope != "overall"


_RECALL = re.compile(r"recall@(\d+)")
_RECALL_LABEL = "Recall@{k}"
_RECALL_DEFINITION = "share of queries with a same-class sample among their k = {k} nearest neighbours (query excluded)"

# After recall@k, in report order.
_FIXED_SPECS = (
    MetricSpec(
        name="map@r",
        label="mAP@R",
        definition="mean average precision at R, R = the other samples of the query's class",
        higher_is_better=True,
        scope="per_query",
    ),
    MetricSpec(
        name="nmi",
        label="NMI",
        definition="normalised mutual information of k-means clusters (one per class) with the classes",
        higher_is_better=True,
        scope="per_set",
    ),
    MetricSpec(
        name="inter_alignment",
        label="Inter-class alignment",
        definition="mean squared distance between classes: much smaller than other groups' = a collapsed group",
        higher_is_better=True,
        scope="per_set",
    ),
    MetricSpec(
        name="intra_alignment",
        label="Intra-class alignment",
        definition="mean squared distance within a class: lower = tighter",
        higher_is_better=False,
        scope="per_set",
    ),
    MetricSpec(
        name="uniformity",
        label="Uniformity",
        definition="log mean exp(-2 d²) over pairs: lower = spread more evenly",
        higher_is_better=False,
        scope="per_set",
    ),
    MetricSpec(
        name="attribute_leakage",
        label="Attribute leakage",
        definition="balanced accuracy of a fresh linear probe predicting the group from the embedding (chance = none)",
        higher_is_better=False,
        scope="overall",
    ),
)
_BY_NAME = {spec.name: spec for spec in _FIXED_SPECS}


def _recall_spec(k: int | str) -> MetricSpec:
    name = f"recall@{k}"
    label, definition = _RECALL_LABEL.format(k=k), _RECALL_DEFINITION.format(k=k)
    return MetricSpec(name, label, definition, higher_is_better=True, scope="per_query")


def metric_specs(ks: Sequence[int]) -> list[MetricSpec]:
    """Every metric of a report with these k values, in report order (attribute_leakage, overall only, last)."""
    return [_recall_spec(k) for k in ks] + list(_FIXED_SPECS)


def metric_spec(name: str) -> MetricSpec | None:
    """The spec of a report metric key (recall@<k> for any k); None for other figures (downstream, FMR/FNMR)."""
    match = _RECALL.fullmatch(name)
    return _recall_spec(match.group(1)) if match else _BY_NAME.get(name)


def higher_is_better(metric: str) -> bool:
    """Direction of a metric key; a figure with no spec (e.g. a downstream accuracy) counts as higher-is-better."""
    spec = metric_spec(metric)
    return spec.higher_is_better if spec is not None else True


# Per-metric summaries over groups, as log-key suffixes, with their direction: "gap" is max - min (lower is
# better), "ratio" min / max and "worst" the worst group's value (higher is better).
GAP_SUMMARIES: dict[str, bool] = {"gap": False, "ratio": True, "worst": True}


def summary_higher_is_better(key: str) -> bool | None:
    """Direction of a log key ending in a gap summary (`.../gap`, `/ratio`, `/worst`); None for other keys."""
    head, _, suffix = key.rpartition("/")
    return GAP_SUMMARIES.get(suffix) if head else None


@dataclass(frozen=True)
class LogKey:
    """A logged scalar: its key and where its value is in a report (`group` or `summary` set, or neither)."""

    key: str
    metric: str
    group: str | None = None
    summary: str | None = None


def report_log_keys(
    split: str, overall_metrics: Sequence[str], group_names: Sequence[str], group_metrics: Sequence[str]
) -> list[LogKey]:
    """The logger keys of a report for `split` ("" for none), in logging order: `{split}/{metric}` (overall),
    `{split}/{metric}/group=<name>`, then `{split}/{metric}/gap|ratio|worst` per metric with groups.

    The one key scheme: `flatten_report` fills these keys with values, `validation_keys` lists them for a
    checkpoint monitor, so a logged key and a key the monitor accepts cannot diverge.
    """
    prefix = f"{split}/" if split else ""
    keys = [LogKey(f"{prefix}{metric}", metric) for metric in overall_metrics]
    keys += [
        LogKey(f"{prefix}{metric}/group={group}", metric, group=group)
        for group in group_names
        for metric in group_metrics
    ]
    keys += [
        LogKey(f"{prefix}{metric}/{summary}", metric, summary=summary)
        for metric in group_metrics
        for summary in GAP_SUMMARIES
    ]
    return keys
