"""Report JSON on disk and as a fixed-width table (the contract is in docs/architecture.md)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

_MISSING = "-"


def strict_json(value):
    """NaN/inf -> None and numpy -> Python, so json.dumps(allow_nan=False) accepts it (json.dump would
    otherwise write the non-standard NaN token)."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_report(report: dict, path: str | os.PathLike) -> Path:
    """Write `report` as indented, strict JSON (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(strict_json(report), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_report(path: str | os.PathLike) -> dict:
    """Read a report written by `save_report`; the error names the file if it is missing or not a report."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no report at {path}")
    report = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(report, dict) or not {"n", "overall", "groups", "gaps"} <= report.keys():
        raise ValueError(f"{path} is not a fairdml report: expected keys n, overall, groups, gaps")
    return report


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _MISSING
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _join_row(cells: list[str], widths: list[int]) -> str:
    """Metric names left-aligned, numbers right-aligned, two spaces between columns."""
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def format_report_table(report: dict) -> str:
    """Rows = metrics, columns = overall, each group, gap (max - min), ratio (min / max), worst group.

    Followed by the chance level of attribute_leakage and the report's warnings, if any.
    """
    groups = list(report.get("groups", {}))
    header = ["metric", "overall", *groups, "gap", "ratio", "worst"]
    rows = [["n", _cell(report.get("n")), *(_cell(report["groups"][g].get("n")) for g in groups), "", "", ""]]
    for metric, value in report.get("overall", {}).items():
        gap = report.get("gaps", {}).get(metric, {})
        rows.append(
            [
                metric,
                _cell(value),
                *(
                    _cell(report["groups"][g].get(metric)) if metric in report["groups"][g] else ""
                    for g in groups
                ),
                _cell(gap.get("max_minus_min")) if gap else "",
                _cell(gap.get("min_over_max")) if gap else "",
                _cell(gap.get("worst_group")) if gap else "",
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [_join_row(row, widths) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    chance = report.get("chance_level", {}).get("attribute_leakage")
    if chance is not None:
        lines.append(f"attribute_leakage: balanced accuracy of a fresh probe; chance level {chance:.4f}")
    for message in report.get("warnings", []):
        lines.append(f"warning: {message}")
    return "\n".join(line.rstrip() for line in lines)
