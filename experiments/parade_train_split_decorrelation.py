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
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parade_sweep import setting_name, sort_key, summarise, write_csv  # noqa: E402

from fairdml.callbacks.instantiate import instantiate_callbacks  # noqa: E402
from fairdml.data.base import DatasetView  # noqa: E402
from fairdml.data.datamodule import DMLDataModule, build_transforms  # noqa: E402
from fairdml.metrics.functional import attribute_leakage  # noqa: E402
from fairdml.metrics.functional.decorrelation import attribute_cka, fresh_decorrelation  # noqa: E402
from fairdml.models.module import DMLModule  # noqa: E402
from fairdml.reports.report import load_report  # noqa: E402
from fairdml.reports.runs import find_runs  # noqa: E402


@torch.no_grad()
def split_embeddings(run_dir: Path, splits: tuple[str, ...]) -> dict[str, tuple[torch.Tensor, ...]]:
    """Per split (without augmentation), from the run's best checkpoint loaded once: (class embeddings,
    first attribute's embeddings, class labels, group codes)."""
    checkpoint = load_report(run_dir / "report.json")["meta"]["best_checkpoint"]
    saved = torch.load(checkpoint or run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    hparams = saved["hyper_parameters"]
    config = hparams["config"]
    data_cfg = OmegaConf.create(config["data"])
    datamodule = DMLDataModule(data_cfg, seed=config["seed"])
    datamodule.setup()
    module = DMLModule(**hparams)
    parade = instantiate_callbacks({"parade": config["callbacks"]["parade"]})[0]
    view = datamodule.views["train"]
    parade.attach(module, list(view.attribute_names), [len(v) for v in view.attribute_values])
    module.load_state_dict(saved["state_dict"])
    module.eval()
    out = {}
    for split in splits:
        chosen = datamodule.views[split]
        plain = DatasetView(chosen.base, chosen.indices, build_transforms(data_cfg, train=False))
        class_parts, attribute_parts = [], []
        for batch in DataLoader(plain, batch_size=256):
            features = module.model.features(batch["image"])
            class_parts.append(module.model.head(features))
            attribute_parts.append(next(iter(parade.attribute_embeddings(module, features=features).values())))
        groups = torch.as_tensor(chosen.attribute_column(datamodule.group_attribute))
        out[split] = (torch.cat(class_parts), torch.cat(attribute_parts), torch.as_tensor(chosen.labels), groups)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, nargs="+", help="sweep or run folders (the CSV goes in the first)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for run in find_runs(args.sweep):
        if run.flat_config.get("callbacks.parade._target_") is None:
            continue
        row = {"setting": setting_name(run.flat_config), "seed": run.seed}
        for split, embedded in split_embeddings(run.path, ("train", "test")).items():
            class_embeddings, attribute_embeddings, labels, groups = embedded
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
    rows.sort(key=sort_key)
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
