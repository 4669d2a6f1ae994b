"""torchmetrics wrapper of the finDML report: accumulate embeddings, compute the report once per epoch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from fairdml.metrics.functional.report import fairness_report
from fairdml.metrics.settings import ReportSettings
from fairdml.metrics.spec import LogKey, group_key, overall_key, report_log_keys
from fairdml.utils.group_names import attribute_of_gap_key, gap_key
from fairdml.utils.numbers import finite_number


def drop_duplicate_indices(indices: Tensor) -> Tensor:
    """Positions that keep the first occurrence of each sample index, ordered by sample index.

    DistributedSampler pads the last shard with repeated samples; after the all-gather each padded sample
    appears twice. Ordering by index also makes the report independent of the number of processes.
    """
    sorted_indices, order = torch.sort(indices, stable=True)
    first = torch.ones_like(sorted_indices, dtype=torch.bool)
    first[1:] = sorted_indices[1:] != sorted_indices[:-1]
    return order[first]


class EmbeddingFairness(Metric):
    """finDML fairness report over a whole evaluation set (all figures need every embedding at once).

    `update(embeddings (B, D), labels (B,), groups (B,) int codes into group_names, indices (B,) or None)` keeps
    the batch; `compute()` gathers all processes (list states, `dist_reduce_fx="cat"`, so uneven last batches
    are fine), drops DDP padding duplicates by sample index and returns `fairness_report(...)`'s dict.
    Call `update`, not `forward`: a per-batch report would be expensive and meaningless.
    `settings` (a `ReportSettings`, checked here so a bad option fails before training) holds the report's
    options; keyword options of `ReportSettings` (ks=, seed=, leakage=, min_group_size=, ...) build or
    override it, and any other keyword goes to torchmetrics' `Metric`. E.g. `min_group_size`: groups with
    fewer samples are flagged "small" and not picked as worst, so `val/recall_at_1/worst` is not a one-sample
    group's noise.

    Args:
        group_names: the name of each group code that `update` receives.
        settings: the report's options (`ReportSettings`).

    Example:
        >>> import torch
        >>> metric = EmbeddingFairness(["a", "b"], ks=(1,), leakage=False)
        >>> labels = torch.arange(6).repeat_interleave(2)
        >>> metric.update(torch.eye(6)[labels], labels, (labels >= 3).long(), torch.arange(12))
        >>> report = metric.compute()
        >>> report["overall"]["recall@1"], sorted(report["groups"])
        (1.0, ['a', 'b'])
        >>> flat = metric.compute_flat("val")  # ready for self.log_dict, in any Lightning logger
        >>> flat["val/recall_at_1"], flat["val_groups/recall_at_1/b"], flat["val/recall_at_1/gap"]
        (1.0, 1.0, 0.0)
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, group_names: Sequence[str], settings: ReportSettings | None = None, **kwargs: Any) -> None:
        report_fields = {field.name for field in dataclasses.fields(ReportSettings)}
        options = {name: kwargs.pop(name) for name in list(kwargs) if name in report_fields}
        super().__init__(**kwargs)
        self.settings = ReportSettings.build(settings, **options)
        self.group_names = [str(name) for name in group_names]
        for state in ("embeddings", "labels", "groups", "indices"):
            self.add_state(state, default=[], dist_reduce_fx="cat")
        self._arrived = 0  # samples `update` has seen since the last reset (numbers them when no indices come)

    def reset(self) -> None:
        super().reset()
        self._arrived = 0

    def compute_flat(self, prefix: str = "") -> dict[str, float]:
        """The report as scalars for `LightningModule.log_dict` (`flatten_report`'s keys, e.g.
        `val_groups/recall_at_1/minority`, `val/recall_at_1/gap`); `compute()` keeps the nested report."""
        return flatten_report(self.compute(), prefix)

    def update(self, embeddings: Tensor, labels: Tensor, groups: Tensor, indices: Tensor | None = None) -> None:
        """Keep one batch (detached); shapes are checked here so a bad batch fails where it comes from.

        `indices` (B,): each sample's index in the evaluation set, so that samples a distributed sampler repeats
        to pad its last shard are counted once. None: numbered in the order they arrive (distinct per process),
        which is exact in one process; under DDP the padding duplicates then count twice.
        """
        batch = embeddings.shape[0]
        if indices is None:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            indices = torch.arange(batch, device=embeddings.device) + self._arrived + (rank << 40)
        self._arrived += batch
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must have shape (B, D), got {tuple(embeddings.shape)}")
        for name, values in (("labels", labels), ("groups", groups), ("indices", indices)):
            if values.shape != (batch,):
                raise ValueError(
                    f"{name} must have shape ({batch},) to match the embeddings, got {tuple(values.shape)}"
                )
        self.embeddings.append(embeddings.detach())
        self.labels.append(labels.detach().long())
        self.groups.append(groups.detach().long())
        self.indices.append(indices.detach().long())

    def compute(self) -> dict:
        """The report of every distinct sample seen (across processes), see `fairness_report`."""
        if isinstance(self.embeddings, list) and not self.embeddings:
            raise ValueError("EmbeddingFairness.compute() called before any update(): no embeddings to evaluate")
        indices = dim_zero_cat(self.indices)
        keep = drop_duplicate_indices(indices)
        report = fairness_report(
            dim_zero_cat(self.embeddings)[keep],
            dim_zero_cat(self.labels)[keep],
            dim_zero_cat(self.groups)[keep],
            self.settings,
            self.group_names,
        )
        report["excluded"]["duplicate_indices"] = int(indices.shape[0] - keep.shape[0])
        return report


_GAP_FIELDS = {"gap": "max_minus_min", "ratio": "min_over_max"}  # a report gap's field per log-key summary


def flatten_report(report: dict, prefix: str = "val") -> dict[str, float]:
    """Logger-friendly scalars from a report; None/NaN values are skipped (loggers reject them).

    Keys (`report_log_keys`, shared with the checkpoint monitor's check): `{prefix}/{metric}` (overall),
    `{prefix}_groups/{metric}/{group}`, and per metric with groups `{prefix}/{metric}/gap` (max - min),
    `{prefix}/{metric}/ratio` (min / max) and `{prefix}/{metric}/worst` (the worst group's value, so a
    checkpoint callback can monitor e.g. `val/recall_at_1/worst`, mode max); crossed groups add each attribute's
    marginal groups and `{prefix}/<attribute>/{metric}/gap|ratio|worst`. Each interval of the report adds
    `<its figure's key>/low` and `/high` (e.g. `test/recall_at_1/gap/low`). Names pass through `log_name`
    (`recall@1` -> `recall_at_1`), so every Lightning logger (MLflow's strict names too) takes the keys.
    """
    overall, groups, gaps = report.get("overall", {}), report.get("groups", {}), report.get("gaps", {})
    marginals = report.get("marginals") or {}
    names = {attribute: list(entry["groups"]) for attribute, entry in marginals.items()}
    flat: dict[str, float] = {}
    for key in report_log_keys(prefix, list(overall), list(groups), list(gaps), names):
        if key.attribute is None:
            value = _log_value(key, overall, groups, gaps)
        else:
            value = _log_value(key, overall, marginals[key.attribute]["groups"], marginals[key.attribute]["gaps"])
        number = finite_number(value)
        if number is not None:
            flat[key.key] = number
    for metric, entries in (report.get("intervals") or {}).items():
        for where, interval in entries.items():
            if interval is None:
                continue
            for end, number in zip(("low", "high"), interval):
                flat[f"{_interval_key(prefix, metric, where)}/{end}"] = number
    return flat


def _interval_key(prefix: str, metric: str, where: str) -> str:
    """Where an interval is logged: beside the figure it bounds (`{prefix}/{metric}`, its group's key, its gap's
    key, an attribute's marginal gap's key)."""
    if where == "overall":
        return overall_key(prefix, metric)
    if where == gap_key():
        return f"{overall_key(prefix, metric)}/gap"
    attribute = attribute_of_gap_key(where)
    if attribute is not None:
        return f"{overall_key(prefix, metric, attribute)}/gap"
    return group_key(prefix, metric, where)


def _log_value(key: LogKey, overall: dict, groups: dict, gaps: dict) -> Any:
    """The report's value for one log key (None when the report has none)."""
    if key.group is not None:
        return groups[key.group].get(key.metric)
    if key.summary is None:
        return overall.get(key.metric)
    gap = gaps[key.metric]
    if key.summary == "worst":
        return groups.get(gap.get("worst_group"), {}).get(key.metric)
    return gap.get(_GAP_FIELDS[key.summary])
