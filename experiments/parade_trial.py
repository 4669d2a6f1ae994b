"""One PARADE design trial on the embedded digits data (the trials logged in docs/parade.md).

Trains `fairdml train OVERRIDES seed=S trainer.max_epochs=E` into outputs/parade_trials/NAME/seedS,
measures it like the final sweep (Recall@1 per group, gap, leakage, fresh-projection de-correlation)
and appends one JSON line to experiments/results/parade_trials.jsonl.

    .venv/bin/python experiments/parade_trial.py --epochs 8 naive_rho4 experiment=parade callbacks.parade.strength=4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parade_sweep import ROOT, evaluate, train  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "parade_trials")
    parser.add_argument("--log", type=Path, default=ROOT / "experiments" / "results" / "parade_trials.jsonl")
    args = parser.parse_intermixed_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    run_dir = train(args.name, args.overrides, args.seed, args.epochs, args.out)
    row = {**evaluate(args.name, args.seed, run_dir), "epochs": args.epochs, "overrides": args.overrides}
    row["minutes"] = round((time.time() - start) / 60, 1)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
