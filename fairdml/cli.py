"""The `fairdml` command. Sub-commands import their work lazily so `fairdml --help` is instant."""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
from collections.abc import Sequence

from fairdml.utils.errors import MitigationNotWiredError, ValidationSkippedError


def _use_config_dir(args: argparse.Namespace) -> None:
    """`--config-dir` is `$FAIRDML_CONFIG_DIR` for this process and its children (sweep runs, DDP ranks)."""
    if args.config_dir:
        from fairdml.utils.config_files import ENV_VAR

        os.environ[ENV_VAR] = os.path.abspath(os.path.expanduser(args.config_dir))


def _train(args: argparse.Namespace) -> None:
    _use_config_dir(args)
    from fairdml.config import compose_config

    if args.multirun:
        from fairdml.sweep import run_local_sweep

        overrides = list(args.overrides)
        if args.sweep_file:
            from fairdml.sweep import sweep_file_overrides

            overrides = sweep_file_overrides(args.sweep_file) + overrides  # the command line wins
        run_local_sweep(overrides, sweep_dir=args.sweep_dir, overwrite=args.overwrite, jobs=args.jobs)
        return
    if args.overwrite:
        raise ValueError("--overwrite goes with -m (a sweep folder); for one run's folder use overwrite=true")
    if args.jobs != 1:
        raise ValueError("--jobs goes with -m (runs of a sweep at a time); one run's threads: OMP_NUM_THREADS")
    cfg = compose_config(args.overrides)  # a config error shows before torch is imported
    if args.cfg:  # Hydra's `--cfg job`: the composed config, nothing run
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return
    from fairdml.train import run_training

    run_training(cfg)


def _init_config(args: argparse.Namespace) -> None:
    from fairdml.utils.config_files import init_config

    written = init_config(args.dir, overwrite=args.overwrite)
    folder = shlex.quote(os.path.abspath(os.path.expanduser(args.dir)))
    print(f"wrote {len(written)} config files to {folder}; edit them, then train with either of")
    print(f"  FAIRDML_CONFIG_DIR={folder} fairdml train [key=value ...]")
    print(f"  fairdml train --config-dir {folder} [key=value ...]")


def _audit(args: argparse.Namespace) -> None:
    options = {
        "ks": tuple(args.ks),
        "seed": args.seed,
        "model_card": args.card,
        "card_inputs": args.card_inputs,
        "kmeans_backend": args.kmeans,
        "min_group_size": args.min_group_size,
        "overwrite": args.overwrite,
    }
    from fairdml.metrics.functional.stages import print_stages

    if args.model is None:
        if len(args.inputs) != 1:
            raise ValueError(f"give one .npz of embeddings, or --model M with key=value overrides; got {args.inputs}")
        from fairdml.reports.audit import run_audit

        with print_stages():  # a line per stage, as it runs: a large audit takes minutes
            run_audit(args.inputs[0], args.out, **options)
        return
    not_overrides = [item for item in args.inputs if "=" not in item]
    if not_overrides:
        raise ValueError(f"with --model, the other arguments are key=value overrides (data=...); got {not_overrides}")
    from fairdml.reports.audit_model import run_model_audit

    with print_stages():
        run_model_audit(args.model, args.out, args.inputs, split=args.split, device=args.device, **options)


def _card(args: argparse.Namespace) -> None:
    if args.push:  # the card is written locally only once the Hub has it: a failed push leaves no file
        from fairdml.reports.hub import push_run

        written = push_run(
            args.run_dir, args.push, args.inputs, out_dir=args.out, embeddings=args.embeddings, private=args.private
        )
    else:
        from fairdml.reports.card import write_model_card

        written = write_model_card(args.run_dir, args.inputs, out_dir=args.out, embeddings=args.embeddings)
    if args.screenshot:
        from fairdml.reports.card import screenshot_card

        written["screenshot"] = screenshot_card(written["html"], args.screenshot)
    for path in written.values():
        print(f"wrote {path}")


def _datacard(args: argparse.Namespace) -> None:
    _use_config_dir(args)
    from fairdml.reports.datacard import write_data_card

    written = write_data_card(args.overrides, args.out, max_images=args.max_images, max_distance=args.max_distance)
    for path in written.values():
        print(f"wrote {path}")


def _export(args: argparse.Namespace) -> None:
    from fairdml.export import export_run

    export_run(args.source, args.out, overwrite=args.overwrite)


def _compare(args: argparse.Namespace) -> None:
    from fairdml.reports.compare import run_compare

    run_compare(args.runs, args.out, wandb=args.wandb)


def _evaluate(args: argparse.Namespace) -> None:
    from fairdml.evaluate import run_evaluate

    run_evaluate(args.run_dir, args.overrides)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser = argparse.ArgumentParser(
        prog="fairdml", description="Train and audit fair deep metric learning models (finDML, PARADE).",
        parents=[common],
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = functools.partial(commands.add_parser, parents=[common])

    train = add("train", help="train a model from the configs (+ key=value overrides)")
    train.add_argument("overrides", nargs="*", help="e.g. model=resnet18 trainer.max_epochs=3 experiment=parade")
    train.add_argument(
        "--config-dir", default=None, metavar="DIR",
        help="compose from this folder (see init-config) instead of the packaged configs; as $FAIRDML_CONFIG_DIR",
    )  # fmt: skip
    train.add_argument("-m", "--multirun", action="store_true", help="sweep comma-separated values locally")
    train.add_argument("--sweep-dir", default=None, help="-m: the sweep folder (default outputs/sweeps/...)")
    train.add_argument("--sweep-file", default=None, help="-m: run a W&B grid sweep file locally")
    train.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="-m: train N runs at a time, each with cores/N threads unless OMP_NUM_THREADS is set (default 1)",
    )  # fmt: skip
    train.add_argument(
        "--overwrite", action="store_true", help="-m: clear the runs of another grid in --sweep-dir (else refused)"
    )
    train.add_argument("--cfg", choices=["job"], default=None, help="print the composed config and exit (as Hydra)")
    train.set_defaults(func=_train)

    init = add("init-config", help="copy the default configs into a folder to edit (then train --config-dir)")
    init.add_argument("dir", help="the folder to write (created; must be empty unless --overwrite)")
    init.add_argument("--overwrite", action="store_true", help="write into a non-empty folder, replacing defaults")
    init.set_defaults(func=_init_config)

    audit = add("audit", help="finDML report of embeddings: an .npz, or a model on a dataset split (--model)")
    audit.add_argument(
        "inputs", nargs="*", metavar="NPZ | key=value",
        help=".npz with arrays embeddings (N,D), labels (N,), groups (N,); with --model: data overrides as for train",
    )  # fmt: skip
    audit.add_argument(
        "--model", default=None, metavar="M",
        help="embed the data with M: a run folder, a model.pt, timm:NAME (with model.pretrained=true or "
        "model.pretrained_path=FILE) or module:function returning an nn.Module",
    )  # fmt: skip
    audit.add_argument("--split", default="test", help="--model: the split to embed, test|val|train|all (default test)")
    audit.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto",
        help="--model: where to embed (auto: cuda with bf16 autocast when there is a GPU, else cpu)",
    )  # fmt: skip
    audit.add_argument("--out", default="audit", help="output folder (report.json, with --model the .npz too)")
    audit.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    audit.add_argument("--seed", type=int, default=0)
    audit.add_argument(
        "--kmeans", choices=["auto", "sklearn", "faiss"], default="auto",
        help="k-means for NMI (auto: scikit-learn up to N x classes = 1e7, faiss above when installed)",
    )  # fmt: skip
    audit.add_argument(
        "--min-group-size", type=int, default=30, metavar="N",
        help="groups with fewer samples are flagged small and not named worst (default 30; 1 flags none)",
    )  # fmt: skip
    audit.add_argument("--no-card", dest="card", action="store_false", help="skip the model card")
    audit.add_argument("--overwrite", action="store_true", help="replace an earlier audit in --out (one per folder)")
    audit.add_argument("--card-inputs", default=None, help="YAML with the card fields only a person can fill")
    audit.set_defaults(func=_audit)

    card = add("card", help="write MODEL_CARD.md and model_card.html for a run folder")
    card.add_argument("run_dir")
    card.add_argument("--inputs", default=None, help="YAML with the fields only a person can fill")
    card.add_argument("--out", default=None, help="output folder (default: the run folder)")
    card.add_argument("--embeddings", default=None, help=".npz of test embeddings (default: the run's)")
    card.add_argument("--screenshot", default=None, help="also save a PNG of the HTML card (needs Chromium)")
    card.add_argument(
        "--push", default=None, metavar="REPO_ID",
        help="upload README.md (the card), model.safetensors, config.json and report.json to this Hugging Face "
        "Hub repo (created if new; needs `hf auth login` or HF_TOKEN)",
    )  # fmt: skip
    card.add_argument("--private", action="store_true", help="--push: create the repo private (when it is new)")
    card.set_defaults(func=_card)

    datacard = add("datacard", help="write data_card.json/.html: the data as training composes it (+ overrides)")
    datacard.add_argument("overrides", nargs="*", help="e.g. data=celeba data.root=/data/celeba")
    datacard.add_argument("--out", default="data_card", help="output folder (default: data_card)")
    datacard.add_argument("--config-dir", default=None, metavar="DIR", help="compose from this config folder")
    datacard.add_argument(
        "--max-images", type=int, default=None, metavar="N",
        help="decode at most N images per split for hashes and sizes (default: all)",
    )  # fmt: skip
    datacard.add_argument(
        "--max-distance", type=int, default=4, metavar="BITS",
        help="near-duplicate: dHashes differing in at most BITS of 64 (default 4)",
    )  # fmt: skip
    datacard.set_defaults(func=_datacard)

    export = add("export", help="the class-embedding model alone (no PARADE heads): .pt, .safetensors + config.json")
    export.add_argument("source", help="a run folder or a .ckpt file")
    export.add_argument(
        "--out", default=None,
        help="output .pt path, or a folder (gets model.pt); model.safetensors and config.json go beside it "
        "(default: <run>/model.pt, if absent)",
    )  # fmt: skip
    export.add_argument("--overwrite", action="store_true", help="replace existing output files")
    export.set_defaults(func=_export)

    compare = add("compare", help="accuracy–fairness trade-off over finished runs")
    compare.add_argument("runs", nargs="+", help="run folders or a sweep folder")
    compare.add_argument("--out", default=None, help="output folder (default: the sweep folder)")
    compare.add_argument(
        "--wandb", choices=["auto", "online", "offline", "disabled"], default="auto",
        help="log the comparison to W&B (auto: when the runs were logged online)",
    )  # fmt: skip
    compare.set_defaults(func=_compare)

    evaluate = add("evaluate", help="downstream evaluation of a trained run's embeddings")
    evaluate.add_argument("run_dir")
    evaluate.add_argument(
        "overrides", nargs="*", help="key=value, e.g. evaluation.downstream_label=Smiling; docs/downstream.md"
    )
    evaluate.set_defaults(func=_evaluate)
    return parser


# Errors that mean "the input is wrong" (a value, a file, a folder, a NaN loss, a loader that skips
# validation): one line naming the cause, exit code 2. Anything else is a bug and keeps its traceback.
USER_ERRORS = (
    ValueError, OSError, KeyError, TypeError, FloatingPointError, ValidationSkippedError, MitigationNotWiredError,
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except USER_ERRORS as error:
        if getattr(args, "debug", False):
            raise
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        print(f"fairdml {args.command}: error: {message} (--debug shows the traceback)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
