"""One JSON line per run folder of experiments/convergence_check.sh: the test figures at the selected checkpoint,
the gap's class-bootstrap interval, what the mitigation measured, and the validation curve (recall@1 and its gap
per epoch, from csv/metrics.csv)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def val_curve(run: Path) -> list[tuple[int, float, float]]:
    """(epoch, val recall@1, val recall@1 gap) per validated epoch, from the run's csv/metrics.csv."""
    with open(run / "csv" / "metrics.csv") as handle:
        return [
            (int(row["epoch"]), float(row["val/recall_at_1"]), float(row["val/recall_at_1/gap"]))
            for row in csv.DictReader(handle)
            if row.get("val/recall_at_1")
        ]


def summary(run: Path) -> dict:
    report = json.loads((run / "report.json").read_text())
    curve = val_curve(run)
    return {
        "run": run.name,
        "experiment": report["meta"].get("experiment", run.name),
        "best_checkpoint": report["meta"].get("best_checkpoint"),
        "recall@1": report["overall"]["recall@1"],
        "recall@1_groups": {g: e["recall@1"] for g, e in report["groups"].items()},
        "recall@1_gap": report["gaps"]["recall@1"]["max_minus_min"],
        "recall@1_gap_interval": report["intervals"]["recall@1"]["gap"],
        "mitigations": {name: entry.get("measured") for name, entry in report.get("mitigations", {}).items()},
        "val_curve": curve,
    }


if __name__ == "__main__":
    for folder in sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "report.json").is_file()):
        print(json.dumps(summary(folder)))
