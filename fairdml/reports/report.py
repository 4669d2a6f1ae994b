"""Report JSON on disk and as a fixed-width table (the contract is in docs/architecture.md)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from fairdml.reports.long_table import write_report_csv
from fairdml.utils.atomic import read_json, write_json
from fairdml.utils.numbers import strict_json

_MISSING = "-"
SMALL_MARK = "*"  # after a small group's n and after a worst group that is small


def save_report(report: dict, path: str | os.PathLike) -> Path:
    """Write `report` as indented, strict JSON (parent folders created); returns the path.

    Atomic (fairdml.utils.atomic): a run killed mid-write leaves the old report.json or none, never half of one.
    The same figures go, one row per group and metric, to the .csv beside it (`long_table.report_rows`).
    """
    table = Path(path).with_suffix(".csv")
    table.unlink(missing_ok=True)  # a save cut short leaves no CSV rather than one of an older report
    written = write_json(path, strict_json(report), indent=2)
    write_report_csv(report, table)
    return written


def load_report(path: str | os.PathLike) -> dict:
    """Read a report written by `save_report`; the error names the file if it is missing or not a report."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no report at {path}")
    report = read_json(path, "report")
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


def _worst_cell(gap: dict) -> str:
    """The worst group, marked when it is a small one (only small groups had a value)."""
    return _cell(gap.get("worst_group")) + (SMALL_MARK if gap.get("worst_group_small") else "")


def format_report_table(report: dict) -> str:
    """Rows = metrics, columns = overall, each group, gap (max - min), ratio (min / max), worst group.

    A small group (fewer samples than settings.min_group_size) has its n marked "*", and so has a worst group
    that is small, with a footnote saying why, so a noisy group never reads as a plain worst. Followed by the
    chance level of attribute_leakage and the report's warnings, if any.
    """
    groups = list(report.get("groups", {}))
    small = [g for g in groups if report["groups"][g].get("small")]
    header = ["metric", "overall", *groups, "gap", "ratio", "worst"]
    n_cells = [_cell(report["groups"][g].get("n")) + (SMALL_MARK if g in small else "") for g in groups]
    rows = [["n", _cell(report.get("n")), *n_cells, "", "", ""]]
    for metric, value in report.get("overall", {}).items():
        gap = report.get("gaps", {}).get(metric, {})
        rows.append(
            [
                metric,
                _cell(value),
                *(_cell(report["groups"][g].get(metric)) if metric in report["groups"][g] else "" for g in groups),
                _cell(gap.get("max_minus_min")) if gap else "",
                _cell(gap.get("min_over_max")) if gap else "",
                _worst_cell(gap) if gap else "",
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [_join_row(row, widths) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if small:
        minimum = (report.get("settings") or {}).get("min_group_size")
        below = f"n < min_group_size={minimum}" if minimum is not None else "below min_group_size"
        lines.append(
            f"{SMALL_MARK} small group ({below}): figures uncertain; named worst only when no larger group has a value"
        )
    for attribute, entry in (report.get("marginals") or {}).items():  # crossed groups: each attribute alone
        marginal = {"n": report.get("n"), "overall": report.get("overall", {}), "settings": report.get("settings")}
        lines += ["", f"by {attribute} alone (marginal groups):", format_report_table(marginal | entry)]
    chance = report.get("chance_level", {}).get("attribute_leakage")
    if chance is not None:
        lines.append(f"attribute_leakage: balanced accuracy of a fresh probe; chance level {chance:.4f}")
    for message in report.get("warnings", []):
        lines.append(f"warning: {message}")
    return "\n".join(line.rstrip() for line in lines)


def format_headline(report: dict, metrics: tuple[str, ...] = ("recall@1", "map@r")) -> str:
    """The few figures a run ends with: per group and overall with their class-bootstrap intervals, the gap
    with its interval, the worst group. (The whole table is `format_report_table`.)"""
    groups = list(report.get("groups", {}))
    intervals = report.get("intervals") or {}

    def figure(value, interval) -> str:
        text = _cell(value) if isinstance(value, float) else _MISSING
        return f"{text} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval and isinstance(value, float) else text

    header = ["test", "overall", *groups, "gap (max - min)", "worst"]
    rows = []
    for metric in metrics:
        if metric not in report.get("overall", {}):
            continue
        bounds, gap = intervals.get(metric, {}), report.get("gaps", {}).get(metric, {})
        rows.append([
            metric, figure(report["overall"][metric], bounds.get("overall")),
            *(figure(report["groups"][g].get(metric), bounds.get(g)) for g in groups),
            figure(gap.get("max_minus_min"), bounds.get("gap")), _worst_cell(gap) if gap else "",
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [_join_row(row, widths) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    confidence = (report.get("settings") or {}).get("confidence")
    bracket = f"; [{confidence:.0%} class-bootstrap intervals]" if intervals and confidence else ""
    lines.append(f"n = {report.get('n')} test images{bracket}")
    return "\n".join(line.rstrip() for line in lines)
