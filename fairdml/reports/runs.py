"""Finished runs on disk (a folder with `config.yaml` and `report.json`), their headline figures and the
settings that tell them apart. Shared by the local sweep's summary and `fairdml compare`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fairdml.config import TrainConfig
from fairdml.numbers import finite_number
from fairdml.reports.report import load_report
from fairdml.run_layout import RunPaths

# The figures a trade-off is read from.
FIGURES = (
    "recall@1",
    "recall@1_gap",  # max - min over groups (lower is better)
    "recall@1_worst",  # the worst group's Recall@1
    "map@r",
    "attribute_leakage",  # linear-probe accuracy of the sensitive attribute (lower is better)
)
NOT_A_SETTING = ("seed", "run_dir", "output_dir", "resume")  # differ between runs of one setting


@dataclass
class FinishedRun:
    path: Path
    config: dict[str, Any]  # dotted keys, e.g. {"parade.strength": 4.0}
    report: dict

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @functools.cached_property
    def figures(self) -> dict[str, float | None]:
        return report_figures(self.report)


def flatten(tree: Any, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested dicts to `sep`-joined keys; lists stay values (they are one setting, e.g. `data.split`)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{sep}{key}" if prefix else str(key), sep))
    return flat


def report_figures(report: dict) -> dict[str, float | None]:
    """The headline figures of a finDML report (None where the report has none, e.g. leakage off)."""
    overall, groups = report.get("overall", {}), report.get("groups", {})
    gap = report.get("gaps", {}).get("recall@1", {})
    worst = groups.get(gap.get("worst_group"), {}).get("recall@1")
    return {
        "recall@1": finite_number(overall.get("recall@1")),
        "recall@1_gap": finite_number(gap.get("max_minus_min")),
        "recall@1_worst": finite_number(worst),
        "map@r": finite_number(overall.get("map@r")),
        "attribute_leakage": finite_number(overall.get("attribute_leakage")),
    }


def is_finished_run(folder: Path) -> bool:
    return RunPaths(folder).config.is_file() and RunPaths(folder).report.is_file()


def load_run(folder: str | Path) -> FinishedRun:
    """A finished run; keys its config.yaml lacks (added to fairdml after it ran) get today's defaults, so
    an older run is not told apart from a newer one of the same setting by a key it could not have had."""
    folder = Path(folder)
    config = OmegaConf.to_container(OmegaConf.load(RunPaths(folder).config), resolve=True)
    return FinishedRun(folder, _defaults() | flatten(config), load_report(RunPaths(folder).report))


@functools.cache
def _defaults() -> dict[str, Any]:
    """Today's config defaults, flattened (built once: composing the schema costs ~45 ms)."""
    return flatten(OmegaConf.to_container(OmegaConf.structured(TrainConfig)))


def find_runs(paths: Iterable[str | Path]) -> list[FinishedRun]:
    """Every finished run at or below the given folders (a run folder, a sweep folder, or a tree of them)."""
    folders: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise FileNotFoundError(f"no such run or sweep folder: {path}")
        found = [path] if is_finished_run(path) else sorted(p.parent for p in path.glob("**/report.json"))
        # W&B keeps copies of report.json and a config.yaml of its own under wandb/: not runs
        found = [folder for folder in found if "wandb" not in folder.relative_to(path).parts]
        folders += [folder for folder in found if is_finished_run(folder) and folder not in folders]
    return [load_run(folder) for folder in folders]


def varying_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Config keys whose value differs between runs, less seeds and paths (leaf name in `exclude`)."""
    keys = sorted({key for config in configs for key in config})
    varying = []
    for key in keys:
        if key.split(".")[-1] in NOT_A_SETTING:
            continue
        values = {json.dumps(config.get(key), sort_keys=True, default=str) for config in configs}
        if len(values) > 1:
            varying.append(key)
    return varying


def setting_label(config: dict[str, Any], keys: Sequence[str]) -> str:
    """`key=value, ...` over the swept keys (`all runs` when nothing was swept but the seed)."""
    return ", ".join(f"{key}={_format_value(config.get(key))}" for key in keys) or "all runs"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
