"""Coverage of the 95 % class-bootstrap intervals of the Recall@1 gap by simulation (issue 27): a markdown table.

Each setting simulates test splits with a known true gap (`fairdml.metrics.functional.interval_simulation`:
30 classes, 20 queries each, per-class hit probabilities drawn around the group's mean) and counts how often each
method's interval holds the true gap: the old percentile interval of max - min, the signed difference of the
full sample's best and worst groups (a candidate), and the test-inversion interval reports now use; then the
mean widths, the share of intervals that exclude their own observed gap, and the coverage of the groups' own
intervals (old percentile / new expanded percentile). Seeded: the same table on every run.

    python experiments/interval_coverage.py                       # 500 splits per setting, as the test
    python experiments/interval_coverage.py --data-sets 2000 --seed 1 --out coverage.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from fairdml.metrics.functional.interval_simulation import SETTINGS, coverage_row, coverage_table, simulate_intervals


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-sets", type=int, default=500, help="simulated splits per setting (default 500)")
    parser.add_argument("--resamples", type=int, default=1000, help="class resamples per split (default 1000)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one core, as measured in docs/model_card.md
    rows, started = [], time.perf_counter()
    for setting in SETTINGS:
        intervals = simulate_intervals(setting, args.data_sets, args.resamples, args.confidence, args.seed)
        rows.append((setting, coverage_row(setting, intervals)))
    table = coverage_table(rows)
    footer = (
        f"\n\n{args.data_sets} simulated splits per setting, {args.resamples} class resamples each, "
        f"{args.confidence:.0%} intervals, seed {args.seed}; {time.perf_counter() - started:.0f} s on one core."
    )
    print(table + footer)
    if args.out is not None:
        args.out.write_text(table + footer + "\n", encoding="utf-8")
    return table


if __name__ == "__main__":
    main()
