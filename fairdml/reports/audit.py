"""`fairdml audit`: the finDML report of saved embeddings (an .npz), without a model or a GPU."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fairdml.metrics.functional.report import fairness_report
from fairdml.reports.report import format_report_table, save_report

REQUIRED_ARRAYS = ("embeddings", "labels", "groups")


def load_embeddings_npz(npz_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read and check `embeddings` (N, D) float, `labels` (N,) int, `groups` (N,) int or str.

    Errors name the file, the missing array or the mismatching shape. `allow_pickle=False`: an .npz from
    elsewhere must not run code; store string groups as a numpy str array, not objects.
    """
    path = Path(npz_path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in REQUIRED_ARRAYS if name not in data.files]
            if missing:
                raise KeyError(
                    f"{path} lacks array(s) {missing}; it has {data.files}, needs {list(REQUIRED_ARRAYS)}"
                )
            arrays = {name: data[name] for name in data.files}
    except ValueError as error:  # object arrays need pickle
        raise ValueError(
            f"{path}: cannot read arrays without pickle ({error}); save groups as str"
        ) from error
    embeddings, labels, groups = (arrays[name] for name in REQUIRED_ARRAYS)
    if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
        raise ValueError(
            f"{path}: embeddings must be a 2-D float array (N, D), got {embeddings.dtype} {embeddings.shape}"
        )
    n = embeddings.shape[0]
    for name, array in (("labels", labels), ("groups", groups)):
        if array.shape != (n,):
            raise ValueError(
                f"{path}: {name} must have shape ({n},) to match embeddings {embeddings.shape}, "
                f"got {array.shape}"
            )
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: labels must be integers, got dtype {labels.dtype}")
    return arrays


def run_audit(
    npz_path: str,
    out_dir: str,
    ks: Sequence[int] = (1, 2, 4, 8),
    seed: int = 0,
    model_card: bool = True,
    card_inputs: str | None = None,
    kmeans_backend: str = "sklearn",
) -> dict:
    """Report of an .npz of embeddings: writes `out_dir/report.json`, prints the table, returns the dict.

    With `model_card`, also the model card (MODEL_CARD.md, model_card.html) in `out_dir`.
    `kmeans_backend="faiss"` makes NMI fast on large sets (see `fairness_report`).
    """
    arrays = load_embeddings_npz(npz_path)
    report = fairness_report(
        arrays["embeddings"],
        arrays["labels"],
        arrays["groups"],
        ks=ks,
        seed=seed,
        kmeans_backend=kmeans_backend,
    )
    meta = {"source": str(npz_path)}
    if "group_attribute" in arrays:
        meta["group_attribute"] = str(arrays["group_attribute"])
    report["meta"] = meta
    save_report(report, Path(out_dir) / "report.json")
    print(format_report_table(report))
    if model_card:
        from fairdml.reports.card.write import write_model_card_after

        write_model_card_after("audit", out_dir, card_inputs, embeddings=npz_path)
    return report
