"""Wall time of one local sweep run one at a time and N at a time (`fairdml train -m --jobs N`, issue 24).

The same 4 × 2 grid (`seed=0,1,2,3` × `data.minority_share=0.1,0.05`: the baseline experiment, the default
model, `--epochs` epochs, no card, no W&B) runs as `fairdml train -m` in a fresh process once per `--jobs`
value, each into its own temporary folder. With `--jobs 1` each run gets every core's threads
(`OMP_NUM_THREADS` = cores, set here); with N > 1 the sweep gives each run cores // N itself (the variables
are unset for it). The table: jobs, the threads each run got (read back from `sweep.json`), the sweep's wall
seconds, the ratio to `--jobs 1`, and the mean seconds of one run. Run it on a quiet machine.

    nice python benchmarks/bench_sweep_jobs.py [--epochs 5] [--jobs 1 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["experiment=baseline", "seed=0,1,2,3", "data.minority_share=0.1,0.05"]
QUIET = ["evaluation.model_card=false", "logger.wandb.enabled=false", "trainer.enable_progress_bar=false"]
# --smoke: two tiny runs (the test suite's model and data sizes), seconds each, to check the script works.
SMOKE = [
    "seed=0,1", "data.options.num_classes=30", "data.options.samples_per_class=12", "data.batch_size=32",
    "data.eval_batch_size=128", "trainer.limit_train_batches=2", "logger=csv",
]  # fmt: skip
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cores() -> int:
    """The cores this process may use, as the sweep counts them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_sweep(overrides: list[str], jobs: int, folder: Path) -> dict:
    """One `fairdml train -m --jobs N` in a fresh process; its wall seconds and its runs' records."""
    env = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES}
    if jobs == 1:  # the sweep leaves one run at a time to torch's default; name it, for the table
        env |= {name: str(cores()) for name in THREAD_VARIABLES}
    command = [sys.executable, "-m", "fairdml", "train", "-m", *overrides, "--jobs", str(jobs)]
    start = time.perf_counter()
    subprocess.run([*command, "--sweep-dir", str(folder)], check=True, env=env, stdout=sys.stderr)
    wall = time.perf_counter() - start
    runs = json.loads((folder / "sweep.json").read_text())["runs"]
    return {"jobs": jobs, "wall": wall, "runs": runs}


def format_table(results: list[dict]) -> str:
    """Jobs | threads per run | wall s | wall / jobs=1 | mean run s, one row per `--jobs` value."""
    baseline = next((result["wall"] for result in results if result["jobs"] == 1), results[0]["wall"])
    lines = [
        "| jobs | threads per run | wall s | wall / jobs=1 wall | mean run s | runs finished |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        runs = result["runs"]
        threads = sorted({str(run["threads"]["OMP_NUM_THREADS"]) for run in runs})
        finished = sum(run["status"] == "finished" for run in runs)
        mean_run = sum(run["seconds"] for run in runs) / len(runs)
        lines.append(
            f"| {result['jobs']} | {', '.join(threads)} | {result['wall']:.1f} | {result['wall'] / baseline:.2f}× "
            f"| {mean_run:.1f} | {finished} of {len(runs)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="trainer.max_epochs of every run (default 5)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--jobs values to time (default 1 2)")
    parser.add_argument("--smoke", action="store_true", help="two tiny runs, one epoch: checks the script only")
    parser.add_argument("--keep", default=None, metavar="DIR", help="write the sweeps here and keep them")
    args = parser.parse_args(argv)
    overrides = [*SMOKE, "trainer.max_epochs=1"] if args.smoke else [*GRID, f"trainer.max_epochs={args.epochs}"]
    overrides += QUIET
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {cores()} CPU cores, load average {load:.2f} at the start", flush=True)
    print(f"sweep: {' '.join(overrides)}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.keep or scratch)
        results = [run_sweep(overrides, jobs, root / f"jobs{jobs}") for jobs in args.jobs]
    table = format_table(results)
    print(table)
    return table


if __name__ == "__main__":
    main()
