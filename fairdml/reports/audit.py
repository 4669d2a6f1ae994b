"""`fairdml audit`: the finDML report of saved embeddings (an .npz), without a model or a GPU."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairdml.metrics.functional.report import fairness_report
from fairdml.metrics.functional.stages import CARD, READ, WRITE, collect_stages, stage
from fairdml.metrics.settings import DEFAULT_MIN_GROUP_SIZE, ReportSettings
from fairdml.reports.embeddings_file import load_embeddings_npz
from fairdml.reports.report import format_report_table, save_report
from fairdml.utils.atomic import write_json
from fairdml.utils.run_layout import RunPaths


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """The output folder, refused before any work when it (or a folder above it) is an existing file."""
    out = Path(out_dir)
    for folder in (out, *out.parents):
        if folder.exists():
            if folder.is_dir():
                break
            what = "is a file" if folder == out else f"is inside {folder}, which is a file"
            raise ValueError(f"--out {out} {what}; give a folder for report.json and the model card")
    return out


def check_audit_options(
    out_dir: str | os.PathLike, model_card: bool = True, card_inputs: str | None = None, **report_options: Any
) -> tuple[Path, ReportSettings]:
    """The output folder and report settings (`ReportSettings`' keywords: ks, seed, kmeans_backend,
    min_group_size, ...), checked with the card inputs before any costly work."""
    out = check_out_dir(out_dir)
    settings = ReportSettings.build(**report_options)
    if model_card and card_inputs is not None:  # the card comes last and only warns: check its inputs first
        from fairdml.reports.card.inputs import load_card_inputs

        load_card_inputs(card_inputs)
    return out, settings


def prepare_audit_dir(out: Path, overwrite: bool = False) -> None:
    """One audit per folder, as one run per folder: an earlier audit's report, card or embeddings never sit
    beside a new one's. An existing folder with files is refused, or, with `overwrite`, accepted if it holds
    fairdml's marker (its audit files are replaced when the new set is complete: `staged_outputs`)."""
    from fairdml.utils.run_folder import run_id

    marker = RunPaths(out).marker
    existing = sorted(p.name for p in out.iterdir() if p != marker) if out.is_dir() else []  # a failed audit's
    if existing and not overwrite:
        raise FileExistsError(
            f"--out {out} already holds files ({', '.join(existing[:6])}): one audit per folder, so that its "
            f"report, card and embeddings are one audit's. Choose another --out, or --overwrite to replace it"
        )
    if existing and run_id(out) is None:
        raise FileExistsError(
            f"--overwrite refuses to clear --out {out}: it has no {marker.name} file, so no fairdml audit or run "
            f"made it; choose an empty or new folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        write_json(marker, {"run_id": uuid.uuid4().hex, "kind": "audit"})


def run_audit(
    npz_path: str,
    out_dir: str,
    ks: Sequence[int] = (1, 2, 4, 8),
    seed: int = 0,
    model_card: bool = True,
    card_inputs: str | None = None,
    kmeans_backend: str = "auto",
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    extra_meta: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """Report of an .npz of embeddings: writes `out_dir/report.json`, prints the table, returns the dict.

    `out_dir` must be new or empty (one audit per folder), or hold an earlier audit to replace with `overwrite`.

    With `model_card`, also the model card (MODEL_CARD.md, model_card.html) in `out_dir`.
    `kmeans_backend` "auto" (default) clusters with scikit-learn up to N x classes = 10^7 and with faiss,
    when installed, above (see `clustering`): the same figures as "sklearn" on small sets, minutes less on
    large ones. The kNN runs on faiss when installed (`knn_backend="auto"`: the same neighbours up to float32
    near-ties, see `knn`). `report["timings"]` has each stage's seconds (read, knn, clustering, geometry, leakage,
    groups, intervals, write, card, card_pairs; card includes card_pairs); `fairdml audit` prints a line per stage
    as it runs. Groups with fewer than
    `min_group_size` samples are flagged "small" and not named worst (see `fairness_report`). A bad `out_dir`,
    report option (`ReportSettings`) or card inputs file fails before the embeddings are read. `extra_meta`
    joins `report["meta"]` (`fairdml audit --model` says there which model, data and split made the .npz).

    Args:
        npz_path: the embeddings: `embeddings` (N, D), `labels` (N,), `groups` (N,) names or codes (with
            `group_names`), optionally `indices`.
        out_dir: the audit's folder (new, empty, or an earlier audit with `overwrite`).
        ks: the Recall@k values.
        seed: seeds the leakage probe, k-means and the bootstrap.
        model_card: also write MODEL_CARD.md and model_card.html.
        card_inputs: YAML of the card's person-only fields (configs/card/card_inputs.yaml).
        kmeans_backend: "auto", "sklearn" or "faiss".
        min_group_size: groups smaller than this are flagged "small".
        extra_meta: entries added to `report["meta"]`.
        overwrite: replace an earlier audit in `out_dir`.

    Example:
        >>> import tempfile, numpy as np
        >>> folder = tempfile.mkdtemp()
        >>> labels = np.arange(40).repeat(5)  # 40 classes of 5
        >>> groups = np.where(labels < 30, "light", "dark")
        >>> embeddings = np.eye(40)[labels] + 0.3 * np.random.default_rng(0).normal(size=(200, 40))
        >>> np.savez(f"{folder}/emb.npz", embeddings=embeddings, labels=labels, groups=groups)
        >>> report = run_audit(f"{folder}/emb.npz", f"{folder}/audit", ks=(1,), model_card=False)  # doctest: +ELLIPSIS
        metric ... worst
        ...
        >>> sorted(report["groups"]), report["n"]
        (['dark', 'light'], 200)
    """
    out, settings = check_audit_options(
        out_dir, model_card, card_inputs, ks=tuple(ks), seed=seed, kmeans_backend=kmeans_backend,
        min_group_size=min_group_size, timings=True, knn_backend="auto",
    )  # fmt: skip
    if not Path(npz_path).exists():  # the input's error first; a bad file fails on reading, leaving no audit
        raise FileNotFoundError(f"no embeddings file at {npz_path}")
    from fairdml.utils.run_folder import staged_outputs  # imports lightning: only when an audit is written

    prepare_audit_dir(out, overwrite)
    with staged_outputs(out, replace_all=True) as staging:
        return audit_into(npz_path, staging, settings, model_card, card_inputs, extra_meta)


def audit_into(
    npz_path: str, staging: Path, settings: ReportSettings, model_card: bool, card_inputs: str | None,
    extra_meta: dict | None, source: str | None = None,
) -> dict:  # fmt: skip
    """`run_audit`'s work into `staging` (`staged_outputs`), in a folder already checked (`prepare_audit_dir`).
    `npz_path` is read; `source` is what the report names as its input (default `npz_path`)."""
    with collect_stages() as timings:
        with stage(READ):
            arrays = load_embeddings_npz(npz_path)
        report = fairness_report(arrays["embeddings"], arrays["labels"], arrays["groups"], settings)
        meta = {"source": str(source or npz_path)}
        if "group_attribute" in arrays:
            meta["group_attribute"] = str(arrays["group_attribute"])
        report["meta"] = {**meta, **(extra_meta or {})}
        with stage(WRITE):
            save_report(report, RunPaths(staging).report)
        print(format_report_table(report))
        if model_card:
            from fairdml.reports.card.write import card_message, write_model_card_after

            final = staging.parents[1]
            with stage(CARD):
                paths = write_model_card_after("audit", staging, card_inputs, npz_path, final, announce=False)
            if paths is not None:
                print(card_message("audit", final, paths))
    report["timings"] = timings  # all stages: written again (the card's copy of the report has the first ones)
    save_report(report, RunPaths(staging).report)
    return report
