"""report.csv and `to_frame`: one row per group and metric, the same figures as report.json."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from fairdml.metrics.functional.report import fairness_report
from fairdml.reports import to_frame
from fairdml.reports.long_table import COLUMNS, report_rows
from fairdml.reports.report import save_report


@pytest.fixture(params=[(60, 3), (200, 5)], ids=["60x3", "200x5"])
def report(request) -> dict:
    n_classes, n_groups = request.param[0] // 4, request.param[1]
    generator = torch.Generator().manual_seed(n_classes)
    labels = torch.arange(n_classes).repeat_interleave(4)
    groups = labels % n_groups
    centres = torch.randn(n_classes, 8, generator=generator)
    embeddings = centres[labels] + torch.randn(len(labels), 8, generator=generator)
    names = [f"g{i}" for i in range(n_groups)]
    out = fairness_report(
        embeddings, labels, groups, group_names=names, ks=(1, 4), leakage=False, bootstrap_resamples=20,
        min_group_size=50,
    )  # fmt: skip
    out["meta"] = {"group_attribute": "style"}
    return out


def test_every_figure_is_one_row_with_its_n_interval_and_flag(report):
    rows = report_rows(report)
    by_key = {(row["group"], row["metric"]): row for row in rows}
    assert len(by_key) == len(rows)  # one row per (group, metric)
    expected = len(report["overall"]) + sum(len(e) - 1 - ("small" in e) for e in report["groups"].values())
    assert len(rows) == expected + 2 * len(report["gaps"])
    for metric, value in report["overall"].items():
        assert by_key[("overall", metric)]["value"] == value and by_key[("overall", metric)]["n"] == report["n"]
    for group, entry in report["groups"].items():
        for metric, value in entry.items():
            if metric in ("n", "small"):
                continue
            row = by_key[(group, metric)]
            assert row["value"] == value and row["n"] == entry["n"] and row["small"] == bool(entry.get("small"))
            assert row["attribute"] == "style"
    for metric, gap in report["gaps"].items():
        assert by_key[("gap", metric)]["value"] == gap["max_minus_min"]
        assert by_key[("ratio", metric)]["value"] == gap["min_over_max"]
    for metric, per_key in report["intervals"].items():
        for key, interval in per_key.items():
            row = by_key[(key, metric)]
            assert [row["low"], row["high"]] == interval and row["low"] <= row["value"] <= row["high"]


def test_csv_and_frame_hold_the_same_rows(report, tmp_path):
    path = save_report(report, tmp_path / "report.json")
    assert json.loads(path.read_text())["n"] == report["n"]
    with open(tmp_path / "report.csv", newline="") as file:
        written = list(csv.DictReader(file))
    rows = report_rows(report)
    assert list(written[0]) == list(COLUMNS) and len(written) == len(rows)
    for line, row in zip(written, rows, strict=True):
        if row["value"] is None:
            assert line["value"] == ""
        else:
            assert float(line["value"]) == pytest.approx(row["value"], rel=1e-15)
    frame = to_frame(report)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(rows)
    table = frame[frame.group.isin(report["groups"])].pivot(index="group", columns="metric", values="value")
    for group, entry in report["groups"].items():
        for metric in table.columns:
            expected = entry[metric]
            assert math.isnan(table.loc[group, metric]) if expected is None else table.loc[group, metric] == expected
