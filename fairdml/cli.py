"""The `fairdml` command. Sub-commands import their work lazily so `fairdml --help` is instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _train(args: argparse.Namespace) -> None:
    from fairdml.config import compose_config
    from fairdml.train import run_training

    if args.multirun:
        from fairdml.reports.sweep import run_local_sweep

        run_local_sweep(args.overrides)
        return
    run_training(compose_config(args.overrides))


def _audit(args: argparse.Namespace) -> None:
    from fairdml.reports.audit import run_audit

    run_audit(args.npz, args.out, ks=tuple(args.ks), seed=args.seed)


def _card(args: argparse.Namespace) -> None:
    from fairdml.reports.card import write_model_card

    written = write_model_card(args.run_dir, args.inputs)
    for path in written.values():
        print(f"wrote {path}")


def _export(args: argparse.Namespace) -> None:
    from fairdml.export import export_run

    export_run(args.source, args.out)


def _compare(args: argparse.Namespace) -> None:
    from fairdml.reports.compare import run_compare

    run_compare(args.runs, args.out)


def _evaluate(args: argparse.Namespace) -> None:
    from fairdml.evaluate import run_evaluate

    run_evaluate(args.run_dir, args.overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairdml", description="Train and audit fair deep metric learning models (finDML, PARADE)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model from configs/ (+ key=value overrides)")
    train.add_argument("overrides", nargs="*", help="e.g. model=resnet18 trainer.max_epochs=3 experiment=parade")
    train.add_argument("-m", "--multirun", action="store_true", help="sweep comma-separated values locally")
    train.set_defaults(func=_train)

    audit = commands.add_parser("audit", help="finDML report of existing embeddings (.npz), no training")
    audit.add_argument("npz", help=".npz with arrays embeddings (N,D), labels (N,), groups (N,)")
    audit.add_argument("--out", default="audit", help="output folder (report.json)")
    audit.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    audit.add_argument("--seed", type=int, default=0)
    audit.set_defaults(func=_audit)

    card = commands.add_parser("card", help="write MODEL_CARD.md and model_card.html for a run folder")
    card.add_argument("run_dir")
    card.add_argument("--inputs", default=None, help="YAML with the fields only a person can fill")
    card.set_defaults(func=_card)

    export = commands.add_parser("export", help="write the class-embedding model alone (no PARADE heads)")
    export.add_argument("source", help="a run folder or a .ckpt file")
    export.add_argument("--out", default=None, help="output .pt path (default: <run>/model.pt)")
    export.set_defaults(func=_export)

    compare = commands.add_parser("compare", help="accuracy–fairness trade-off over finished runs")
    compare.add_argument("runs", nargs="+", help="run folders or a sweep folder")
    compare.add_argument("--out", default=None, help="output folder (default: the sweep folder)")
    compare.set_defaults(func=_compare)

    evaluate = commands.add_parser("evaluate", help="downstream evaluation of a trained run's embeddings")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("overrides", nargs="*")
    evaluate.set_defaults(func=_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError, TypeError) as error:
        if getattr(args, "debug", False):
            raise
        print(f"fairdml {args.command}: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
