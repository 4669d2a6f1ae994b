"""Finished runs on disk (docs/architecture.md, "Run folder"): one `Run` for the model card, the sweep summary
and `fairdml compare`, their headline figures and the settings that tell runs apart.

report.json is required and read at once (every reader needs it). The rest is read on first use: the
embeddings (the card's threshold view), config.yaml and data_summary.json (the card says when they are
missing), and the config as dotted keys (`flat_config`: what `fairdml compare` groups runs by).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import OmegaConf

from fairdml.reports.embeddings_file import load_embeddings_npz
from fairdml.reports.report import load_report
from fairdml.utils.nested import dotted_keys, get_path
from fairdml.utils.numbers import finite_number
from fairdml.utils.run_layout import CONFIG_FILE, EMBEDDINGS_FILE, REPORT_FILE, RUN_MARKER_FILE, RunPaths

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
class Run:
    """One run folder: its report, and its other files read when first asked for (None when absent)."""

    path: Path
    report: dict
    embeddings_file: Path  # the run's embeddings_test.npz, or the .npz `fairdml audit` passes from elsewhere

    @functools.cached_property
    def arrays(self) -> dict[str, np.ndarray] | None:
        """embeddings (N, D), labels (N,), groups (N,) [, group_attribute]; checked as `fairdml audit` does."""
        return load_embeddings_npz(self.embeddings_file) if self.embeddings_file.is_file() else None

    @functools.cached_property
    def config(self) -> dict | None:
        """config.yaml as written (nested)."""
        return _read_optional(RunPaths(self.path).config, yaml.safe_load)

    @functools.cached_property
    def data_summary(self) -> dict | None:
        return _read_optional(RunPaths(self.path).data_summary, json.loads)

    @functools.cached_property
    def flat_config(self) -> dict[str, Any]:
        """config.yaml as dotted keys (e.g. {"parade.strength": 4.0}); keys it lacks (added to fairdml after
        the run) get today's defaults, so an older run is not told apart from a newer one of the same setting
        by a key it could not have had."""
        path = RunPaths(self.path).config
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.path} has no {CONFIG_FILE} (required to compare runs: written by `fairdml train`)"
            )
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        return _defaults() | _callback_defaults(config) | dotted_keys(config)

    @property
    def seed(self) -> Any:
        return self.flat_config.get("seed")

    @functools.cached_property
    def figures(self) -> dict[str, float | None]:
        return report_figures(self.report)

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        return report_intervals(self.report)

    @property
    def group_attribute(self) -> str:
        """The sensitive attribute's name, from the first file that records it."""
        candidates = (
            get_path(self.report, "meta.group_attribute"),
            self.arrays.get("group_attribute") if self.arrays else None,
            get_path(self.data_summary, "group_attribute"),
            get_path(self.config, "data.sensitive_attribute"),
        )
        return next((str(v) for v in candidates if v is not None and str(v)), "group")

    @property
    def dataset(self) -> str:
        return str(get_path(self.data_summary, "dataset") or get_path(self.config, "data.name", "unknown"))


def _read_optional(path: Path, parse: Callable[[str], Any]) -> dict | None:
    value = parse(path.read_text(encoding="utf-8")) if path.is_file() else None
    return value if isinstance(value, dict) else None


def _callback_defaults(config: dict) -> dict[str, Any]:
    """Today's defaults of the run's callbacks' arguments (their signatures), as dotted keys."""
    entries = config.get("callbacks") or {}
    if not any(isinstance(entry, dict) and "_target_" in entry for entry in entries.values()):
        return {}
    from fairdml.utils.targets import signature_defaults  # here: Hydra, and only runs with callbacks need it

    return dotted_keys({"callbacks": signature_defaults(entries)})


@functools.cache
def _defaults() -> dict[str, Any]:
    """Today's config defaults as dotted keys (built once: composing the schema costs ~45 ms)."""
    from fairdml.config import TrainConfig  # here, not at the top: the card never needs Hydra

    return dotted_keys(OmegaConf.to_container(OmegaConf.structured(TrainConfig)))


def load_run(
    folder: str | os.PathLike, embeddings: str | os.PathLike | None = None, need_embeddings: bool = False
) -> Run:
    """The run in `folder` (`embeddings` replaces its .npz); errors say which file is missing and who writes it.

    Args:
        folder: a `fairdml train` run or a `fairdml audit` folder (report.json is required, the rest optional).
        embeddings: an .npz of test embeddings to use instead of the folder's embeddings_test.npz.
        need_embeddings: read and check the .npz now, so that a card needing it fails before writing anything.

    Returns:
        A `Run`: `report`, and `figures`, `config`, `arrays` ... read on first use.

    Example:
        >>> import tempfile, numpy as np
        >>> from fairdml.reports.audit import run_audit
        >>> temporary = tempfile.TemporaryDirectory()
        >>> folder = temporary.name
        >>> labels = np.arange(40).repeat(5)
        >>> np.savez(f"{folder}/emb.npz", embeddings=np.eye(40)[labels], labels=labels,
        ...          groups=np.where(labels < 30, "light", "dark"))
        >>> _ = run_audit(f"{folder}/emb.npz", f"{folder}/audit", ks=(1,), model_card=False)  # doctest: +ELLIPSIS
        metric ...
        >>> run = load_run(f"{folder}/audit")
        >>> run.figures["recall@1"], sorted(run.report["groups"])
        (1.0, ['dark', 'light'])
        >>> load_run(f"{folder}/emb_only")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: run folder not found: .../emb_only
        >>> temporary.cleanup()
    """
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder not found: {path}")
    paths = RunPaths(path)
    if not paths.report.is_file():
        raise FileNotFoundError(
            f"{path} has no {REPORT_FILE} (required: written by `fairdml train` or `fairdml audit`)"
        )
    npz = Path(embeddings) if embeddings is not None else paths.embeddings
    if need_embeddings and not npz.is_file():
        raise FileNotFoundError(
            f"{npz} not found (the threshold view needs the test embeddings: `fairdml train` writes "
            f"{EMBEDDINGS_FILE}; pass threshold_view=False for a card without the view)"
        )
    run = Run(path, load_report(paths.report), npz)
    if need_embeddings:
        run.arrays  # noqa: B018 - read and checked now
    return run


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


def report_intervals(report: dict) -> dict[str, tuple[float, float]]:
    """The bootstrap intervals of the headline figures that have one (recall@1 and its gap), for error bars."""
    recall = (report.get("intervals") or {}).get("recall@1") or {}
    out = {}
    for figure, key in (("recall@1", "overall"), ("recall@1_gap", "gap")):
        interval = recall.get(key)
        if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
            out[figure] = (float(interval[0]), float(interval[1]))
    return out


def is_finished_run(folder: Path) -> bool:
    return RunPaths(folder).config.is_file() and RunPaths(folder).report.is_file()


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every finished run at or below the given folders (a run folder, a sweep folder, or a tree of them)."""
    folders: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise FileNotFoundError(f"no such run or sweep folder: {path}")
        found = [path] if is_finished_run(path) else sorted(p.parent for p in path.glob(f"**/{REPORT_FILE}"))
        # W&B keeps copies of report.json and a config.yaml of its own under wandb/: not runs
        found = [folder for folder in found if "wandb" not in folder.relative_to(path).parts]
        folders += [folder for folder in found if is_finished_run(folder) and folder not in folders]
    return [load_run(folder) for folder in folders]


def unfinished_runs(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """Run folders at or below `paths` that `find_runs` leaves out, each with why (so none vanishes unsaid)."""
    left_out = []
    for path in map(Path, paths):
        if not path.is_dir():
            continue
        candidates = {p.parent for name in (CONFIG_FILE, RUN_MARKER_FILE) for p in path.glob(f"**/{name}")}
        for folder in sorted(candidates):
            if "wandb" in folder.relative_to(path).parts or is_finished_run(folder):
                continue
            missing = [name for name in (CONFIG_FILE, REPORT_FILE) if not (folder / name).is_file()]
            left_out.append((folder, f"no {' or '.join(missing)}: the run did not finish (killed, failed or running)"))
    return left_out


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
