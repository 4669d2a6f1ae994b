"""The card's "Quantitative analyses": every figure of report.json per group, with gaps, leakage, the
downstream classifiers (report["downstream"], when present) and the verification error rates.
"""

from __future__ import annotations

from typing import Any

from fairdml.reports.card.blocks import (
    Block,
    Heading,
    Section,
    Table,
    Text,
    ThresholdView,
    fmt_interval,
    fmt_number,
    fmt_percent,
    value_of,
)
from fairdml.reports.card.metric_names import metric_header
from fairdml.reports.card.verification import Verification, rate_gap
from fairdml.reports.runs import Run
from fairdml.utils.group_names import GAP, gap_key
from fairdml.utils.nested import dotted_keys

GAP_HEADERS = ["Metric", "Max − min", "Min / max", "Worst group"]
SMALL_FLAG = "⚠ small"  # after a group flagged "small" in report.json (n below settings.min_group_size)
FIGURE_PATH = " / "  # joins the keys of a nested figure whose shape the card does not know: "fairness / dp"


def small_group_note(report: dict) -> str:
    """Why some groups carry SMALL_FLAG; "" when the report flags none."""
    if not any(isinstance(e, dict) and e.get("small") for e in (report.get("groups") or {}).values()):
        return ""
    minimum = (report.get("settings") or {}).get("min_group_size")
    below = f"fewer than {fmt_number(minimum)}" if minimum is not None else "too few"
    return (
        f"{SMALL_FLAG}: the group has {below} test samples (min_group_size), so its figures are uncertain; "
        "it is named worst only when no larger group has a value."
    )


def group_table(report: dict, metrics: list[str], header: Any = metric_header) -> Table:
    """Rows "overall" and one per group, a column per metric; bootstrap intervals where the report has any.

    A group the report flags "small" shows SMALL_FLAG beside its name, with a note saying why.
    """
    intervals = report.get("intervals") or {}
    slices = [("overall", report.get("n"), report.get("overall") or {})]
    slices += [(name, entry.get("n"), entry) for name, entry in (report.get("groups") or {}).items()]
    rows = []
    for name, n, values in slices:
        label = f"{name} {SMALL_FLAG}" if name != "overall" and values.get("small") else name
        cells = [label, fmt_number(n)]
        for metric in metrics:
            text = fmt_number(value_of(values.get(metric))) if metric in values else ""
            ci = (intervals.get(metric) or {}).get(name)
            if isinstance(ci, (list, tuple)) and len(ci) == 2:
                text += f" {fmt_interval(*ci)}"
            cells.append(text)
        rows.append(cells)
    return Table(["Group", "n", *(header(m) for m in metrics)], rows, note=small_group_note(report))


def worst_group_text(gap: dict) -> str:
    """The worst group as the card shows it: flagged when small, and naming the small groups passed over."""
    text = str(gap.get("worst_group"))
    if gap.get("worst_group_small"):
        text += f" {SMALL_FLAG} (only small groups have a value)"
    excluded = gap.get("small_groups_excluded") or []
    if excluded:
        text += f"; not ranked ({SMALL_FLAG}): {', '.join(str(g) for g in excluded)}"
    return text


def gap_table(
    gaps: dict, header: Any = metric_header, note: str = "", intervals: dict | None = None, key: str = GAP
) -> Table:
    """Per metric: max − min (with its bootstrap interval, `intervals[metric][key]`, where the report has one) and
    min / max over every group with a value, and the worst group (flagged)."""
    rows = []
    for metric, gap in gaps.items():
        if isinstance(gap, dict):
            ci = ((intervals or {}).get(metric) or {}).get(key)
            spread = fmt_number(gap.get("max_minus_min"))
            if isinstance(ci, (list, tuple)) and len(ci) == 2:
                spread += f" {fmt_interval(*ci)}"
            cells = [spread, fmt_number(gap.get("min_over_max"))]
            rows.append([header(metric), *cells, worst_group_text(gap)])
        else:
            rows.append([header(metric), fmt_number(value_of(gap)), "", ""])
    return Table(GAP_HEADERS, rows, note=note)


def _flat_metrics(values: dict) -> dict[str, Any]:
    """A slice's metrics with nested ones (e.g. {"fairness": {"dp": v}}) as "fairness / dp"; "n" dropped."""
    flat = dotted_keys({k: v for k, v in values.items() if k != "n"}, FIGURE_PATH)
    return {k: v for k, v in flat.items() if k}


def _figure_rows(figures: dict) -> list[list[str]]:
    """One [name, value] row per leaf of `figures` (nested names joined with FIGURE_PATH)."""
    return [[name, fmt_number(value)] for name, value in dotted_keys(figures, FIGURE_PATH).items()]


def _report_like(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("groups"), dict)


def _holds_report(entry: Any) -> bool:
    return _report_like(entry) or (isinstance(entry, dict) and any(_holds_report(v) for v in entry.values()))


def downstream_tasks(value: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """(name, per-group report) pairs; a task holding variants (e.g. unbalanced / balanced) is walked.

    Takes both shapes: {TASK: REPORT} and fairdml.evaluate's {"label": L, "unbalanced": REPORT, ...}.
    """
    if not prefix and isinstance(value.get("label"), str):
        prefix = f"label '{value['label']}' / "
    tasks = []
    for key, entry in value.items():
        if _report_like(entry):
            tasks.append((f"{prefix}{key}", entry))
        elif isinstance(entry, dict):
            tasks += downstream_tasks(entry, f"{prefix}{key} / ")
    return tasks


def flat_report(entry: dict) -> dict:
    """A downstream task's report with nested figures flattened, in the shape `group_table` reads."""
    groups = {g: v for g, v in entry["groups"].items() if isinstance(v, dict)}
    return {
        "n": entry.get("n"),
        "overall": _flat_metrics(entry.get("overall") or {}),
        "groups": {g: {"n": v.get("n"), **_flat_metrics(v)} for g, v in groups.items()},
        "intervals": entry.get("intervals"),
    }


def downstream_blocks(downstream: Any) -> list[Block]:
    """Per task: a per-group table, its gaps, and any other figure of the task as a plain list."""
    if not isinstance(downstream, dict) or not downstream:
        return []
    blocks: list[Block] = [
        Heading("Downstream classifiers"),
        Text("Classifiers trained on the frozen embeddings (fairdml evaluate): does the bias propagate?"),
    ]
    setup = {k: v for k, v in downstream.items() if not _holds_report(v)}  # label, protocol, ...
    if setup:
        blocks.append(Table(["Setting", "Value"], _figure_rows(setup)))
    for name, entry in downstream_tasks(downstream):
        flat = flat_report(entry)
        slices = [flat["overall"], *flat["groups"].values()]
        metrics = list(dict.fromkeys(m for values in slices for m in values if m != "n"))
        blocks += [Heading(f"Downstream: {name}"), group_table(flat, metrics, header=str)]
        if isinstance(entry.get("gaps"), dict) and entry["gaps"]:
            blocks.append(gap_table(entry["gaps"], header=str))
        other = {k: v for k, v in entry.items() if k not in ("n", "overall", "groups", "gaps", "intervals")}
        if other:
            blocks.append(Table(["Figure", "Value"], _figure_rows(other)))
    return blocks


def rates_table(verification: Verification) -> Table:
    """Per-group FMR/FNMR with counts and intervals at the operating threshold, and their gaps."""
    rows = []
    for name, r in verification.rates.items():
        rows.append([
            name, fmt_number(r["threshold"], 3),
            f"{fmt_percent(r['fmr'])} {fmt_interval(*r['fmr_ci95'], fmt=fmt_percent)}",
            f"{fmt_number(r['false_matches'])} / {fmt_number(r['impostors'])}",
            f"{fmt_percent(r['fnmr'])} {fmt_interval(*r['fnmr_ci95'], fmt=fmt_percent)}",
            f"{fmt_number(r['false_non_matches'])} / {fmt_number(r['genuines'])}",
        ])  # fmt: skip
    for kind in ("fmr", "fnmr"):
        gap = rate_gap({name: r[kind] for name, r in verification.rates.items()})
        ratio = f", ×{gap['max_over_min']:.2f}" if gap["max_over_min"] is not None else ""
        cells = [f"{fmt_percent(gap['max_minus_min'])}{ratio} (worst: {gap['worst_group']})", ""]
        cells = cells + ["", ""] if kind == "fmr" else ["", "", *cells]
        rows.append([f"Gap in {kind.upper()} (max − min)", "", *cells])
    headers = ["Group", "Threshold", "FMR [95% CI]", "False matches / impostor pairs"]
    headers += ["FNMR [95% CI]", "False non-matches / genuine pairs"]
    return Table(headers, rows, note="At the operating threshold; model_card.html lets you move it.")


def equal_fmr_table(verification: Verification) -> Table:
    """Per-group thresholds that give every group at most the pooled FMR at the operating threshold."""
    equal, names = verification.equal_fmr, verification.counts.group_names
    rows = [
        [
            name,
            fmt_number(equal["threshold"][g], 3),
            fmt_percent(equal["fmr"][g]),
            fmt_percent(equal["fnmr"][g]),
        ]
        for g, name in enumerate(names)
    ]
    note = (
        f"Each group's loosest threshold whose FMR is at most {fmt_percent(equal['target_fmr'])}, the FMR of "
        "all groups' pairs at the operating threshold: with these, no group bears more false matches than "
        "the average."
    )
    return Table(["Group", "Threshold for equal FMR", "FMR", "FNMR"], rows, note=note)


def marginal_blocks(report: dict, metrics: list[str]) -> list[Block]:
    """With crossed groups ("A=1|B=0"), each attribute's own groups and gaps, below the crossed ones."""
    blocks: list[Block] = []
    for attribute, entry in (report.get("marginals") or {}).items():
        marginal = {k: report.get(k) for k in ("n", "overall", "intervals", "settings")} | entry
        blocks += [
            Heading(f"Groups by {attribute} alone (marginal)"),
            group_table(marginal, metrics),
            gap_table(
                entry.get("gaps") or {},
                note=small_group_note(marginal),
                intervals=report.get("intervals"),
                key=gap_key(attribute),
            ),
        ]
    return blocks


def _leakage_blocks(run: Run) -> list[Block]:
    leakage = value_of((run.report.get("overall") or {}).get("attribute_leakage"))
    if leakage is None:
        return []
    chance = (run.report.get("chance_level") or {}).get("attribute_leakage")
    text = (
        f"A linear probe trained after training predicts '{run.group_attribute}' from the embedding with "
        f"balanced accuracy {fmt_number(leakage)} (chance level {fmt_number(chance)}). Closer to chance = "
        "less of the attribute is recoverable."
    )
    return [Heading("Attribute leakage"), Text(text)]


def quantitative_section(run: Run, verification: Verification | None) -> Section:
    report = run.report
    metrics = [m for m in (report.get("overall") or {}) if m != "attribute_leakage"]
    blocks: list[Block] = [Heading("Retrieval and embedding geometry by group"), group_table(report, metrics)]
    gaps = gap_table(report.get("gaps") or {}, note=small_group_note(report), intervals=report.get("intervals"))
    blocks += [Heading("Gaps between groups"), gaps]
    blocks += marginal_blocks(report, metrics)
    blocks += _leakage_blocks(run)
    blocks += downstream_blocks(report.get("downstream"))
    if verification is not None:
        view = ThresholdView(verification, run.group_attribute)
        blocks += [Heading("Verification error rates against the threshold"), view]
    return Section("quantitative-analyses", "Quantitative analyses", blocks)
