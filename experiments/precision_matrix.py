"""bf16-mixed vs 32-true on the tiny matrix of tests/test_precision_paths.py, over several seeds: the largest
difference of each report figure, which sets the test's tolerances (docs/precision.md).

    python experiments/precision_matrix.py --seeds 0 1 2 --out /tmp/precision_matrix
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.fixtures_datasets import write_two_attribute_celeba  # noqa: E402
from test_precision_paths import EXPERIMENTS, PRECISIONS, _overrides  # noqa: E402

from fairdml.config import compose_config  # noqa: E402
from fairdml.train import run_training  # noqa: E402

FIGURES = ("recall@1", "map@r", "nmi")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("/tmp/precision_matrix"))
    args = parser.parse_args()
    celeba = args.out / "celeba"
    if not celeba.exists():
        write_two_attribute_celeba(celeba)
    rows = []
    for experiment in EXPERIMENTS:
        for seed in args.seeds:
            overall = {}
            for precision in PRECISIONS:
                run_dir = args.out / f"{experiment}-{precision}-{seed}"
                overrides = [*_overrides(experiment, precision, run_dir, celeba), f"seed={seed}", "overwrite=true"]
                run_training(compose_config(overrides))
                overall[precision] = json.loads((run_dir / "report.json").read_text())["overall"]
            rows.append((experiment, seed, {f: abs(overall["bf16-mixed"][f] - overall["32-true"][f]) for f in FIGURES}))
    print("| experiment | " + " | ".join(f"max abs diff {f}" for f in FIGURES) + " |")
    print("|---|" + "---:|" * len(FIGURES))
    for experiment in EXPERIMENTS:
        diffs = [d for e, _, d in rows if e == experiment]
        print(f"| {experiment} | " + " | ".join(f"{max(d[f] for d in diffs):.4f}" for f in FIGURES) + " |")
    print("| **all** | " + " | ".join(f"**{max(d[f] for _, _, d in rows):.4f}**" for f in FIGURES) + " |")


if __name__ == "__main__":
    main()
