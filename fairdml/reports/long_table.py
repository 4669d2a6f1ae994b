"""A report as long-format rows, one per group and metric: `report.csv` beside every report.json, and a pandas
DataFrame (`to_frame`). The shape of fairlearn's `MetricFrame.by_group` once stacked, which pandas, R and a
spreadsheet read as they are; the nested JSON stays the complete record.
"""

from __future__ import annotations

import csv
import io
import os
from typing import TYPE_CHECKING, Any

from fairdml.utils.atomic import write_text
from fairdml.utils.group_names import gap_key
from fairdml.utils.numbers import finite_number

if TYPE_CHECKING:
    import pandas

COLUMNS = ("attribute", "group", "metric", "value", "low", "high", "n", "small")
# Group labels of the rows that are not a group: the whole set, and each metric's summary over groups.
OVERALL, GAP, RATIO = "overall", "gap", "ratio"


def report_rows(report: dict) -> list[dict[str, Any]]:
    """Rows of `COLUMNS`: every overall figure, every group's figures, then each metric's gap (max - min) and
    ratio (min / max); with crossed groups, the same again for each attribute's marginal groups (`attribute`
    names the set). `low`/`high` are the report's interval where it has one; None where a value is undefined."""
    attribute = (report.get("meta") or {}).get("group_attribute")
    intervals = report.get("intervals") or {}

    def row(group: str, metric: str, value: Any, n: Any = None, small: bool = False, key: str | None = None) -> dict:
        low, high = (intervals.get(metric) or {}).get(key or group) or (None, None)
        return {
            "attribute": attribute, "group": group, "metric": metric, "value": finite_number(value),
            "low": finite_number(low), "high": finite_number(high), "n": n, "small": small,
        }  # fmt: skip

    rows = [row(OVERALL, metric, value, report.get("n")) for metric, value in (report.get("overall") or {}).items()]
    # The groups compared (crossed ones when the run crosses attributes), then each attribute's marginal groups.
    sets = [(attribute, report)] + [(a, entry) for a, entry in (report.get("marginals") or {}).items()]
    for set_attribute, entries in sets:
        for group, entry in (entries.get("groups") or {}).items():
            rows += [
                row(group, metric, value, entry.get("n"), bool(entry.get("small"))) | {"attribute": set_attribute}
                for metric, value in entry.items()
                if metric not in ("n", "small")
            ]
        interval_key = gap_key() if entries is report else gap_key(set_attribute)
        for metric, gap in (entries.get("gaps") or {}).items():
            rows += [
                row(GAP, metric, gap.get("max_minus_min"), key=interval_key) | {"attribute": set_attribute},
                row(RATIO, metric, gap.get("min_over_max")) | {"attribute": set_attribute},
            ]
    return rows


def to_frame(report: dict) -> pandas.DataFrame:
    """The report's rows as a pandas DataFrame (pandas comes with fairdml; the import stays lazy).

    Example:
        >>> report = {"n": 4, "overall": {"recall@1": 0.5}, "gaps": {"recall@1": {"max_minus_min": 1.0}},
        ...           "groups": {"a": {"n": 2, "recall@1": 1.0}, "b": {"n": 2, "recall@1": 0.0}}}
        >>> frame = to_frame(report)
        >>> frame[frame.metric == "recall@1"].set_index("group")["value"].to_dict()
        {'overall': 0.5, 'a': 1.0, 'b': 0.0, 'gap': 1.0, 'ratio': nan}
    """
    try:
        import pandas
    except ModuleNotFoundError:
        raise ModuleNotFoundError("fairdml.reports.to_frame needs pandas: pip install pandas") from None
    return pandas.DataFrame(report_rows(report), columns=list(COLUMNS))


def write_report_csv(report: dict, path: str | os.PathLike) -> None:
    """`report_rows` as CSV (empty cells for None), written atomically like report.json."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in report_rows(report))
    write_text(path, buffer.getvalue())
