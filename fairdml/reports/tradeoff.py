"""The accuracy–fairness trade-off over runs: one point per setting (mean and spread over seeds) and the
Pareto front (settings no other setting beats on both accuracy and fairness).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fairdml.reports.runs import FIGURES, Run, setting_label, varying_keys


@dataclass
class Setting:
    """The runs of one setting of the swept keys (they differ only in the seed)."""

    label: str
    values: dict[str, object]  # swept key -> value
    runs: list[Run] = field(default_factory=list)

    def samples(self, figure: str) -> list[float]:
        return [value for run in self.runs if (value := run.figures[figure]) is not None]

    def mean(self, figure: str) -> float | None:
        samples = self.samples(figure)
        return float(np.mean(samples)) if samples else None

    def std(self, figure: str) -> float | None:
        """Sample standard deviation over seeds (ddof=1); 0 for a single run."""
        samples = self.samples(figure)
        if not samples:
            return None
        return float(np.std(samples, ddof=1)) if len(samples) > 1 else 0.0

    @property
    def seeds(self) -> list:
        return [run.seed for run in self.runs]


def group_settings(runs: Sequence[Run]) -> tuple[list[Setting], list[str]]:
    """Group runs by the config keys that vary between them, seeds and paths excluded; each setting is
    labelled by the fewest of those keys that still tell the settings apart (`distinguishing_keys`)."""
    configs = [run.flat_config for run in runs]
    keys = varying_keys(configs)
    shown = distinguishing_keys(configs, keys)
    settings: dict[str, Setting] = {}
    for run in runs:
        config = run.flat_config
        full = setting_label(config, keys)
        if full not in settings:
            settings[full] = Setting(setting_label(config, shown), {key: config.get(key) for key in keys})
        settings[full].runs.append(run)
    return list(settings.values()), keys


def distinguishing_keys(configs: Sequence[dict], keys: Sequence[str]) -> list[str]:
    """A small subset of `keys` whose values still tell every setting apart, for short labels.

    Greedy: repeatedly add the key that splits the settings into the most groups (ties: the first in
    `keys`). Why: changing an experiment changes many keys at once (a loss, its kwargs, a miner, ...),
    and a legend listing all of them is unreadable; one or two of them name the setting.
    """

    def distinct(chosen: Sequence[str]) -> int:  # as the labels read (4 and 4.0 both show as "4")
        return len({setting_label(config, chosen) for config in configs})

    target, chosen = distinct(keys), []
    while distinct(chosen) < target:
        chosen.append(max((k for k in keys if k not in chosen), key=lambda k: distinct([*chosen, k])))
    return [key for key in keys if key in chosen]


def pareto_front(maximise: Sequence[float], minimise: Sequence[float]) -> np.ndarray:
    """Mask of the points no other point dominates (>= on `maximise`, <= on `minimise`, one strictly).

    Written out (O(n^2)) rather than taken from a library: a sweep has tens of points, and the only
    multi-objective packages (pymoo, paretoset) would be a dependency for these four lines.
    """
    up, down = np.asarray(maximise, dtype=float), np.asarray(minimise, dtype=float)
    no_worse = (up[None, :] >= up[:, None]) & (down[None, :] <= down[:, None])  # [i, j]: j no worse than i
    better = (up[None, :] > up[:, None]) | (down[None, :] < down[:, None])
    return ~(no_worse & better).any(axis=1)


def settings_table(settings: Sequence[Setting], keys: Sequence[str]) -> tuple[list[str], list[list]]:
    """One row per setting: swept values, number of seeds, mean and std of each figure, Pareto flags."""
    columns = [*keys, "seeds"]
    for figure in FIGURES:
        columns += [f"{figure}_mean", f"{figure}_std"]
    columns += ["pareto_gap", "pareto_leakage"]
    fronts = {fairness: front_mask(settings, fairness) for fairness in ("recall@1_gap", "attribute_leakage")}
    rows = []
    for index, setting in enumerate(settings):
        row: list = [setting.values.get(key) for key in keys] + [len(setting.runs)]
        for figure in FIGURES:
            row += [setting.mean(figure), setting.std(figure)]
        row += [bool(front[index]) for front in fronts.values()]
        rows.append(row)
    return columns, rows


def front_mask(settings: Sequence[Setting], fairness: str) -> np.ndarray:
    """Pareto mask of the settings on (mean Recall@1 up, mean `fairness` down); False where one is missing."""
    accuracy = [setting.mean("recall@1") for setting in settings]
    unfairness = [setting.mean(fairness) for setting in settings]
    present = np.array([a is not None and u is not None for a, u in zip(accuracy, unfairness)], dtype=bool)
    mask = np.zeros(len(settings), dtype=bool)
    if present.any():
        keep = np.flatnonzero(present)
        mask[keep] = pareto_front([accuracy[i] for i in keep], [unfairness[i] for i in keep])
    return mask
