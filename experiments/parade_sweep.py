"""The PARADE sweep's table: mean ± std over seeds per setting, from a folder of finished runs.

The runs themselves come from `experiments/parade_final_sweep.sh` (`fairdml train -m ...`, one sweep
folder). Each PARADE run's report.json carries `parade` (written by the callback at test time): the
de-correlation achieved, measured with *fresh* projection networks on the test split
(fairdml.metrics.functional.decorrelation.fresh_decorrelation). Writes one row per run and a summary per
setting as CSV beside the runs, and prints a Markdown table.

    .venv/bin/python experiments/parade_sweep.py outputs/parade_sweep

`train` and `evaluate` are also used by experiments/parade_trial.py (the design trials).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from fairdml.metrics.functional import attribute_leakage
from fairdml.metrics.functional.decorrelation import attribute_cka
from fairdml.reports.runs import find_runs

ROOT = Path(__file__).resolve().parents[1]


def train(name: str, overrides: list[str], seed: int, epochs: int, out_root: Path) -> Path:
    run_dir = out_root / name / f"seed{seed}"
    if (run_dir / "report.json").is_file():
        return run_dir
    command = [
        "nice", "-n", "10", str(ROOT / ".venv/bin/fairdml"), "train", *overrides, f"seed={seed}",
        f"trainer.max_epochs={epochs}", "logger=csv", "trainer.enable_progress_bar=false",
        f"run_dir={run_dir}",
    ]  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(run_dir / "train.log", "w") as logfile:
        subprocess.run(command, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT, check=True)
    return run_dir


def test_split_figures(run_dir: Path, seed: int) -> dict[str, float]:
    """From the saved test embeddings of any run (PARADE or not): linear CKA with the one-hot attribute, and
    the linear probe's leakage held out by class (runs made before that split was fixed report a sample split)."""
    if not (run_dir / "embeddings_test.npz").is_file():  # runs from before fairdml saved them
        return {"linear_cka": math.nan, "attribute_leakage": math.nan}
    saved = np.load(run_dir / "embeddings_test.npz")
    _, codes = np.unique(saved["groups"], return_inverse=True)
    embeddings, codes = torch.from_numpy(saved["embeddings"]), torch.from_numpy(codes)
    probe = attribute_leakage(embeddings, codes, torch.from_numpy(saved["labels"]), seed=seed)
    return {"linear_cka": attribute_cka(embeddings, codes), "attribute_leakage": probe.balanced_accuracy}


def evaluate(name: str, seed: int, run_dir: Path) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    row = {
        "setting": name,
        "seed": seed,
        "recall@1": report["overall"]["recall@1"],
        **{f"recall@1_{group}": values["recall@1"] for group, values in report["groups"].items()},
        "recall@1_gap": report["gaps"]["recall@1"]["max_minus_min"],
        "decorrelation_fresh": math.nan,
        "decorrelation_chance": math.nan,
        "decorrelation_ceiling": math.nan,
        "shared": math.nan,
        "shared_cosine": math.nan,
        **test_split_figures(run_dir, seed),
        "run_dir": str(run_dir),
    }
    # written by the callback at test time
    measured = report.get("mitigations", {}).get("parade", {}).get("measured", {}).get("style")
    if measured is not None and "shared" not in measured:  # runs older than the `shared` figure
        measured = None
    if measured is not None:
        row["decorrelation_fresh"] = measured["decorrelation"]
        row["decorrelation_chance"] = measured["decorrelation_chance"]
        row["decorrelation_ceiling"] = measured["decorrelation_ceiling"]
        row["shared"] = measured["shared"]
        row["shared_cosine"] = measured.get("shared_cosine", math.nan)
    return row


def summarise(rows: list[dict]) -> list[dict]:
    metrics = [k for k in rows[0] if k not in ("setting", "seed", "run_dir")]
    out = []
    for name in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == name]
        entry: dict = {"setting": name, "n_seeds": len(mine)}
        for metric in metrics:
            values = np.array([r.get(metric, math.nan) for r in mine], dtype=float)
            entry[f"{metric}_mean"] = float(np.mean(values))
            entry[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        out.append(entry)
    return out


def markdown(summary: list[dict]) -> str:
    columns = [
        ("recall@1", "R@1"), ("recall@1_majority", "R@1 majority"), ("recall@1_minority", "R@1 minority"),
        ("recall@1_gap", "R@1 gap"), ("shared", "e_a share in e_c (squared)"),
        ("shared_cosine", "e_a share in e_c (cosine)"), ("linear_cka", "CKA(e_c, attribute)"),
        ("attribute_leakage", "leakage"),
    ]  # fmt: skip
    header = "| setting | seeds | " + " | ".join(t for _, t in columns) + " |"
    lines = [header, "|---" * (len(columns) + 2) + "|"]
    for entry in summary:
        cells = []
        for key, _ in columns:
            mean, std = entry.get(f"{key}_mean", math.nan), entry.get(f"{key}_std", math.nan)
            cells.append("—" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {entry['setting']} | {entry['n_seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def setting_name(config: dict) -> str:
    """baseline / group_balanced / parade_rho<ρ′> / group_balanced+parade_rho<ρ′> from a flattened config."""
    balanced = config.get("callbacks.group_balanced._target_") is not None
    if config.get("callbacks.parade._target_") is not None:
        strength = float(config.get("callbacks.parade.strength", 4.0))  # 4.0: Parade's default
        return ("group_balanced+" if balanced else "") + f"parade_rho{strength:g}"
    return "group_balanced" if balanced else "baseline"


def sort_key(row: dict) -> tuple:
    """Table order: baseline, group_balanced, PARADE by strength, group_balanced+PARADE by strength; seed."""
    name = row["setting"]
    rank = {"baseline": 0, "group_balanced": 1}.get(name, 3 if name.startswith("group_balanced+") else 2)
    strength = float(name.rpartition("parade_rho")[2]) if rank >= 2 else 0.0
    return (rank, strength, row["seed"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="folder holding the finished runs (searched recursively)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [evaluate(setting_name(run.flat_config), run.seed, run.path) for run in find_runs([args.sweep])]
    if not rows:
        raise SystemExit(f"no finished runs under {args.sweep}")

    rows.sort(key=sort_key)
    summary = summarise(rows)
    write_csv(args.sweep / "parade_runs.csv", rows)
    write_csv(args.sweep / "parade_summary.csv", summary)
    print(markdown(summary))


if __name__ == "__main__":
    sys.exit(main())
