"""`fairdml card RUN_DIR`: gather a run's figures once and write MODEL_CARD.md, model_card.html and the
sidecar model_card_data.json beside them.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

from huggingface_hub import ModelCard

from fairdml import __version__
from fairdml.metrics.functional.stages import CARD_PAIRS, stage
from fairdml.reports.card.blocks import fmt_number, value_of
from fairdml.reports.card.inputs import load_card_inputs
from fairdml.reports.card.metadata import build_card_data
from fairdml.reports.card.render_html import render_html
from fairdml.reports.card.render_markdown import render_markdown
from fairdml.reports.card.results import SMALL_FLAG
from fairdml.reports.card.sections import build_sections, mitigation_names
from fairdml.reports.card.threshold_html import COLORS
from fairdml.reports.card.verification import (
    Verification,
    compute_verification,
    verification_summary,
    view_data,
)
from fairdml.reports.runs import Run, get_path, load_run
from fairdml.utils.atomic import atomic_path, disk_is_full, write_json, write_text
from fairdml.utils.numbers import strict_json

CARD_FILES = {"markdown": "MODEL_CARD.md", "html": "model_card.html", "data": "model_card_data.json"}
SIDECAR_SCHEMA = "fairdml-model-card/1"


def _chips(run: Run, verification: Verification | None) -> list[tuple[str, str]]:
    """The key figures at the top of the HTML page."""
    overall, gaps = run.report.get("overall") or {}, run.report.get("gaps") or {}
    chips = [
        ("Dataset", run.dataset),
        ("Groups by", run.group_attribute),
        ("Test samples", fmt_number(run.report.get("n"))),
    ]
    if "recall@1" in overall:
        chips.append(("Recall@1", fmt_number(value_of(overall["recall@1"]), 3)))
        gap = gaps.get("recall@1") or {}
        if gap.get("max_minus_min") is not None:
            worst = f"{gap.get('worst_group')}{f' {SMALL_FLAG}' if gap.get('worst_group_small') else ''}"
            chips.append(("Recall@1 gap", f"{fmt_number(gap['max_minus_min'], 3)} (worst: {worst})"))
    if verification is not None:
        chips.append(("Operating threshold", fmt_number(verification.operating_threshold, 3)))
    chips.append(("Mitigations", mitigation_names(run)))
    return chips


def _model_name(run: Run, configured: str | None) -> str:
    experiment = get_path(run.config, "experiment") or get_path(run.report, "meta.experiment")
    return configured or (f"{experiment}-{run.path.name}" if experiment else run.path.name)


def write_model_card(
    run_dir: str | os.PathLike,
    card_inputs: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    threshold_view: bool = True,
    embeddings: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Write MODEL_CARD.md, model_card.html and model_card_data.json for a run folder.

    The card reads the run's report.json, and config.yaml and data_summary.json when present (it says when they
    are missing); fields only a person can fill come from `card_inputs`, else become marked prompts.

    Args:
        run_dir: a `fairdml train` run or a `fairdml audit` folder (it needs report.json).
        card_inputs: YAML of the person-only fields (configs/card/card_inputs.yaml); None: prompts.
        out_dir: where to write the card; None: the run folder.
        threshold_view: add the verification (threshold) view, which needs the test embeddings.
        embeddings: the .npz of test embeddings; None: RUN_DIR/embeddings_test.npz.

    Returns:
        {"markdown", "html", "data"} → the path of each file written.

    Example:
        The card of an audit (`fairdml train` and `fairdml audit` write one themselves):

        >>> import tempfile, numpy as np
        >>> from fairdml.reports.audit import run_audit
        >>> temporary = tempfile.TemporaryDirectory()
        >>> folder = temporary.name
        >>> labels = np.arange(40).repeat(5)
        >>> np.savez(f"{folder}/emb.npz", embeddings=np.eye(40)[labels], labels=labels,
        ...          groups=np.where(labels < 30, "light", "dark"))
        >>> _ = run_audit(f"{folder}/emb.npz", f"{folder}/audit", ks=(1,), model_card=False)  # doctest: +ELLIPSIS
        metric ...
        >>> paths = write_model_card(f"{folder}/audit", embeddings=f"{folder}/emb.npz")
        >>> sorted(path.name for path in paths.values())
        ['MODEL_CARD.md', 'model_card.html', 'model_card_data.json']
        >>> temporary.cleanup()
    """
    inputs = load_card_inputs(card_inputs)  # a bad inputs file fails before the run's arrays are read
    run = load_run(run_dir, embeddings=embeddings, need_embeddings=threshold_view)
    verification = None
    if threshold_view and run.arrays is not None:
        with stage(CARD_PAIRS):
            verification = compute_verification(run.arrays, inputs.verification)
    model_name = _model_name(run, inputs.model_name)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"fairdml {__version__} · run {run.path.name} · card written {generated}"
    sections = build_sections(run, inputs, verification, model_name)
    card_data = build_card_data(run, inputs, verification, model_name)

    out = Path(out_dir) if out_dir is not None else run.path
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in CARD_FILES.items()}
    markdown = f"---\n{card_data.to_yaml()}\n---\n\n{render_markdown(sections, model_name, subtitle)}"
    with atomic_path(paths["markdown"], suffix=".md") as temporary:  # never a half-written card
        ModelCard(markdown).save(temporary)  # parsing it here validates the metadata
    view = view_data(verification) if verification is not None else None
    page = render_html(
        sections, model_name, subtitle, _chips(run, verification), {"threshold_view": view, "colors": COLORS}
    )
    write_text(paths["html"], page)
    sidecar = {
        "schema": SIDECAR_SCHEMA,
        "generated": generated,
        "model_name": model_name,
        "fairdml_version": __version__,
        "run_folder": run.path.name,
        "group_attribute": run.group_attribute,
        "inputs": dataclasses.asdict(inputs),
        "config": run.config,
        "report": run.report,
        "data_summary": run.data_summary,
        "verification": verification_summary(verification, view) if verification is not None else None,
        "eval_results": [dataclasses.asdict(r) for r in card_data.eval_results or []],
    }
    write_json(paths["data"], strict_json(sidecar), indent=2)
    return paths


def write_model_card_after(
    command: str,
    run_dir: str | os.PathLike,
    card_inputs: str | os.PathLike | None = None,
    embeddings: str | os.PathLike | None = None,
    final_dir: str | os.PathLike | None = None,
    announce: bool = True,
) -> dict[str, Path] | None:
    """The card written automatically at the end of `fairdml train` / `fairdml audit`.

    By then the run's results are saved, so a failure here warns (naming `fairdml card` to retry) instead
    of failing a finished run or a sweep. `final_dir`: where the card ends up when `run_dir` is a staging
    folder (what the messages name). `announce`: print where the card is (the audit prints it after its
    progress line instead).
    """
    shown = Path(final_dir) if final_dir is not None else Path(run_dir)
    try:
        paths = write_model_card(run_dir, card_inputs, embeddings=embeddings)
    except Exception as error:  # noqa: BLE001 - a card failure must not turn a finished run into a failed one
        if disk_is_full(error, Path(run_dir)):  # ... but a full disk is no card bug: one line, not a half set
            raise
        warnings.warn(
            f"fairdml {command}: model card not written ({error!r}); retry with `fairdml card {shown}`",
            stacklevel=2,
        )
        return None
    if announce:
        print(card_message(command, shown, paths))
    return paths


def card_message(command: str, folder: Path, paths: dict[str, Path]) -> str:
    return f"fairdml {command}: model card in {folder / paths['markdown'].name} and {folder / paths['html'].name}"
