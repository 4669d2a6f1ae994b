"""Where a whole default `fairdml train` spends its time, from the run's own `report["timings"]`.

Runs `fairdml train` (the default config: tiny model on the embedded digits data, CPU) in a fresh process, in a
temporary folder, with W&B and the progress bar off, and prints its profile: the seconds and share of the run's
total of each stage (set-up, data card, fit split into training steps, validations, sanity check and the rest:
loading, checkpoints, logging; test, report, export, model card), the mean per step and per validation, and
the shares of steps, validation, writing and cards. The process's wall time beyond the run's total is Python's
start-up, the imports and the loggers' closing. `--compare-epochs A B` runs twice and prints both profiles side
by side; further arguments are overrides for every run (a before/after of another setting: run it twice).

    nice -n 10 python benchmarks/bench_run.py [--epochs 60] [--compare-epochs 30 60] [KEY=VALUE ...]

`--smoke` trains a tiny run in this process (for the test suite; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Every run: no W&B (no network, no upload in the figures) and no progress bar (a line per refresh).
QUIET = ["logger.wandb.enabled=false", "trainer.enable_progress_bar=false"]
# --smoke: a 0.37M-parameter model on 30 classes x 12 images (tests/helpers/tiny.py's sizes).
SMOKE = [
    "model=tiny", "data.options.num_classes=30", "data.options.samples_per_class=12", "data.batch_size=32",
    "data.eval_batch_size=128", "logger=csv", "evaluation.leakage=false",
]  # fmt: skip
# (report["timings"] key, label, indent): the table's rows, in the order the stages run.
ROWS = [
    ("setup", "setup (checks, data, model, trainer)", 0),
    ("data_card", "data card", 0),
    ("fit", "fit", 0),
    ("train_steps", "training steps", 2),
    ("validation", "validations", 2),
    ("sanity_check", "sanity check", 2),
    ("fit_other", "other: loading, checkpoints, logging", 2),
    ("test", "test", 0),
    ("downstream", "downstream probes", 0),
    ("report", "report.json + report.csv", 0),
    ("export", "export: embeddings, model.pt", 0),
    ("model_card", "model card", 0),
    ("total", "run total (report)", 0),
]
LABEL_WIDTH, SECONDS_WIDTH, SHARE_WIDTH = 44, 12, 6


def run_profile(epochs: int, overrides: Sequence[str], folder: Path, in_process: bool) -> dict:
    """One `fairdml train` of `epochs` epochs into `folder`; its report's timings and the wall time around it."""
    from fairdml.reports.report import load_report

    arguments = ["train", *overrides, *QUIET, f"trainer.max_epochs={epochs}", f"run_dir={folder}"]
    start = time.perf_counter()
    if in_process:
        from fairdml.cli import main as fairdml_main

        fairdml_main(arguments)
    else:
        subprocess.run([sys.executable, "-m", "fairdml", *arguments], check=True, stdout=sys.stderr)
    wall = time.perf_counter() - start
    return {"epochs": epochs, "timings": load_report(folder / "report.json")["timings"], "wall": wall}


def shares(timings: dict) -> dict[str, float]:
    """The issue's four shares of the run's total: steps, validation, writing (report, export), cards."""
    total = timings["total"] or float("nan")
    return {
        "steps": timings["train_steps"] / total,
        "validation": timings["validation"] / total,
        "I/O (report, export)": (timings["report"] + timings["export"]) / total,
        "cards (data, model)": (timings["data_card"] + timings["model_card"]) / total,
    }


def _line(label: str, cells: Sequence[tuple[str, str]]) -> str:
    """A label, then a (value, share) pair of cells per run."""
    values = "".join(f" {value:>{SECONDS_WIDTH}} {share:>{SHARE_WIDTH}}" for value, share in cells)
    return f"{label:<{LABEL_WIDTH}}{values}".rstrip()


def format_profiles(profiles: Sequence[dict]) -> str:
    """Rows = stages, two columns per run (seconds, share of its total), then the means and the four shares."""
    header = _line("stage", [(f"s ({p['epochs']} ep)", "share") for p in profiles])
    lines = [header, "-" * len(header)]
    for key, label, indent in ROWS:
        cells = [(f"{p['timings'][key]:.3f}", f"{p['timings'][key] / (p['timings']['total'] or float('nan')):.1%}")
                 for p in profiles]  # fmt: skip
        lines.append(_line(" " * indent + label, cells))
    lines.append(_line("process wall (+ start-up, imports, closing)", [(f"{p['wall']:.3f}", "") for p in profiles]))
    lines.append("")
    for label, key in (("training steps", "train_step_count"), ("validations", "validation_count")):
        lines.append(_line(label, [(str(p["timings"][key]), "") for p in profiles]))
    means = [
        ("ms per training step", lambda t: 1000 * t["train_steps"] / max(t["train_step_count"], 1)),
        ("s per validation", lambda t: t["validation"] / max(t["validation_count"], 1)),
    ]
    for label, mean in means:
        lines.append(_line(label, [(f"{mean(p['timings']):.3f}", "") for p in profiles]))
    for label in shares(profiles[0]["timings"]):
        lines.append(_line(f"share: {label}", [("", f"{shares(p['timings'])[label]:.1%}") for p in profiles]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    """Run the profile(s) and print the table; returns it (tests/test_benchmarks.py)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: the config's)")
    parser.add_argument("--compare-epochs", type=int, nargs=2, metavar=("A", "B"), help="two runs side by side")
    parser.add_argument("--smoke", action="store_true", help="a tiny run in this process (the test suite)")
    parser.add_argument("--keep", default=None, metavar="DIR", help="write the runs here and keep them")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE overrides for every run")
    args = parser.parse_args(argv)
    overrides = [*(SMOKE if args.smoke else []), *args.overrides]
    if args.compare_epochs:
        epochs = list(args.compare_epochs)
    elif args.epochs is not None:
        epochs = [args.epochs]
    else:
        from fairdml.config import compose_config

        epochs = [1 if args.smoke else int(compose_config(overrides).trainer.max_epochs)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep or scratch)
        profiles = [
            run_profile(n, overrides, folder / f"run-{i}-{n}-epochs", in_process=args.smoke)
            for i, n in enumerate(epochs)
        ]
    threads = os.environ.get("OMP_NUM_THREADS")
    table = "\n".join([
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; OMP_NUM_THREADS={threads}",
        f"fairdml train {' '.join(overrides) or '(default config)'}: whole-run profile from report['timings']",
        format_profiles(profiles),
    ])  # fmt: skip
    print(table)
    return table


if __name__ == "__main__":
    main()
