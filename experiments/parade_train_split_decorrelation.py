"""Diagnostic: is e_c de-correlated from e_a on the *training* classes, where the adversary worked?

The report's `parade.shared` is measured on the test split (classes never seen in training). If it does
not fall with ρ′, this tells apart an adversary that does nothing (shared stays high on the training
split too) from one whose effect does not carry over to new classes (shared falls on the training split
only). For each PARADE run under a folder, on the training split (no augmentation) and on the test split:
fresh-P shares (held out by class, both correlation forms), linear CKA of e_c with the attribute, and the
linear probe's leakage (held out by class); prints mean ± std per ρ′ and writes a CSV beside the runs.

    .venv/bin/python experiments/parade_train_split_decorrelation.py outputs/parade_sweep
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parade_sweep import summarise, test_embeddings, write_csv  # noqa: E402

from fairdml.callbacks.parade import attribute_cka, fresh_decorrelation  # noqa: E402
from fairdml.metrics.functional import attribute_leakage  # noqa: E402
from fairdml.reports.runs import find_runs  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sweep", type=Path, nargs="+", help="sweep or run folders (the CSV goes in the first)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for run in find_runs(args.sweep):
        if not run.config.get("parade.enabled"):
            continue
        row = {"setting": f"parade_rho{float(run.config['parade.strength']):g}", "seed": run.seed}
        for split in ("train", "test"):
            class_embeddings, attributes, labels, groups = test_embeddings(run.path, split)
            attribute_embeddings = next(iter(attributes.values()))
            for form in ("squared", "cosine"):
                result = fresh_decorrelation(
                    class_embeddings, attribute_embeddings, labels=labels, groups=groups, seed=run.seed, form=form,
                    steps=500,
                )  # fmt: skip
                row[f"shared_{form}_{split}"] = result["shared"]
            row[f"linear_cka_{split}"] = attribute_cka(class_embeddings, groups)
            probe = attribute_leakage(class_embeddings, groups, labels, seed=run.seed)
            row[f"leakage_{split}"] = probe.balanced_accuracy
        row["run_dir"] = str(run.path)
        print(row, flush=True)
        rows.append(row)
    rows.sort(key=lambda r: (float(r["setting"].removeprefix("parade_rho")), r["seed"]))
    summary = summarise(rows)
    write_csv(args.sweep[0] / "parade_train_split_decorrelation.csv", summary)
    columns = [k for k in rows[0] if k.startswith(("shared_", "linear_cka_", "leakage_"))]
    print("| setting | seeds | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for entry in summary:
        cells = [f"{entry[f'{c}_mean']:.3f} ± {entry[f'{c}_std']:.3f}" for c in columns]
        print(f"| {entry['setting']} | {entry['n_seeds']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
