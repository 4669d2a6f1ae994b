"""Read what a model card is made from: a run folder (docs/architecture.md, "Run folder").

report.json is required; embeddings_test.npz is required for the threshold view (`fairdml audit` passes
its .npz from elsewhere); config.yaml and data_summary.json are optional and the card says when they are
missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fairdml.reports.embeddings_file import load_embeddings_npz
from fairdml.reports.report import load_report
from fairdml.run_layout import EMBEDDINGS_FILE, RunPaths


def get_path(mapping: Any, dotted: str, default: Any = None) -> Any:
    """`mapping["a"]["b"]` for "a.b", or `default` when any level is missing."""
    for key in dotted.split("."):
        if not isinstance(mapping, dict) or key not in mapping:
            return default
        mapping = mapping[key]
    return mapping


@dataclass
class Run:
    """What the card reads from a run folder; optional parts are None when absent."""

    path: Path
    report: dict
    arrays: dict[str, np.ndarray] | None  # embeddings (N, D), labels (N,), groups (N,) [, group_attribute]
    config: dict | None
    data_summary: dict | None

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

    @property
    def parade_enabled(self) -> bool:
        return bool(get_path(self.config, "parade.enabled", False))


def _read_optional(path: Path, parse: Callable[[str], Any]) -> dict | None:
    value = parse(path.read_text(encoding="utf-8")) if path.is_file() else None
    return value if isinstance(value, dict) else None


def load_run(
    run_dir: str | os.PathLike, embeddings: str | os.PathLike | None = None, need_embeddings: bool = True
) -> Run:
    """Read the run folder (`embeddings` replaces its .npz); errors say what is missing."""
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder not found: {path}")
    if not RunPaths(path).report.is_file():
        raise FileNotFoundError(
            f"{path} has no report.json (required: written by `fairdml train` or `fairdml audit`)"
        )
    npz = Path(embeddings) if embeddings is not None else path / EMBEDDINGS_FILE
    if npz.is_file():
        arrays = load_embeddings_npz(npz)
    elif need_embeddings:
        raise FileNotFoundError(
            f"{npz} not found (the threshold view needs the test embeddings: `fairdml train` writes "
            f"{EMBEDDINGS_FILE}; pass threshold_view=False for a card without the view)"
        )
    else:
        arrays = None
    return Run(
        path=path,
        report=load_report(RunPaths(path).report),
        arrays=arrays,
        config=_read_optional(RunPaths(path).config, yaml.safe_load),
        data_summary=_read_optional(RunPaths(path).data_summary, json.loads),
    )
