"""`fairdml datacard`: compose the training config, set up its data the way training does, write the card."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairdml.utils.atomic import write_json, write_text
from fairdml.utils.run_layout import RunPaths

# `fairdml train` hashes at most this many images per split (~0.7 s on the default digits data); the command
# hashes all of them unless told otherwise.
RUN_FOLDER_MAX_IMAGES = 1000


def write_data_card_files(card: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """data_card.json and data_card.html of a `measure_data` result, in `out_dir` (created)."""
    from fairdml.reports.datacard.render import render_data_card_html

    paths = RunPaths(Path(out_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    write_json(paths.data_card_json, card, default=str)
    write_text(paths.data_card_html, render_data_card_html(card))
    return {"json": paths.data_card_json, "html": paths.data_card_html}


def write_data_card(
    overrides: Sequence[str], out_dir: str | os.PathLike, max_images: int | None = None, max_distance: int = 4
) -> dict[str, Any]:
    """Measure the data of `compose_config(overrides)` (splits and imbalance as training builds them); write it."""
    from fairdml.config import compose_config
    from fairdml.data import DMLDataModule
    from fairdml.reports.datacard.measure import measure_data

    if max_images is not None and max_images < 1:
        raise ValueError(f"--max-images must be at least 1, got {max_images}")
    if not 0 <= max_distance <= 64:
        raise ValueError(f"--max-distance must be in 0..64 (bits of the hash), got {max_distance}")
    out = Path(out_dir)
    blocked = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:  # before decoding every image, not after
        raise ValueError(f"--out {out}: {blocked} is a file; give a folder for data_card.json and data_card.html")
    cfg = compose_config(list(overrides))
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    datamodule.setup()
    card = measure_data(datamodule, max_images=max_images, max_distance=max_distance, seed=cfg.seed)
    return write_data_card_files(card, out_dir)


def write_run_data_card(datamodule: Any, run_dir: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """The data card of a training run (capped at RUN_FOLDER_MAX_IMAGES per split); a failure only warns."""
    from fairdml.reports.datacard.measure import measure_data

    try:
        card = measure_data(datamodule, max_images=RUN_FOLDER_MAX_IMAGES, seed=seed)
        return write_data_card_files(card, run_dir)
    except Exception as error:  # noqa: BLE001 - a description of the data never fails the training it describes
        warnings.warn(f"data card not written ({type(error).__name__}: {error}); run `fairdml datacard`", stacklevel=2)
        return {}
