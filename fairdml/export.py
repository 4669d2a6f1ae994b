"""`fairdml export`: the class-embedding model alone, from a run folder or a training checkpoint.

From a run folder it exports the checkpoint the run itself selected (recorded in `selection.json` with
its monitor and score), never one guessed from file names, and it never replaces an existing file unless
asked: the run's own `model.pt` is the tested model.

Three files, written together or not at all: `model.pt` (torch, loads with `load_embedding_model`) and, in the
same folder, the timm-style pair `model.safetensors` + `config.json` (`fairdml.models.hub_folder`), which loads
without unpickling and is what `fairdml card RUN --push REPO_ID` uploads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fairdml.models.embedding import EmbeddingModel
from fairdml.models.hub_folder import CONFIG_FILE, WEIGHTS_FILE, write_model_files
from fairdml.utils.run_folder import load_checkpoint, read_selection, selected_by
from fairdml.utils.run_layout import MODEL_FILE, RunPaths

log = logging.getLogger("fairdml")


def load_trained_model(checkpoint: Path) -> tuple[EmbeddingModel, dict[str, Any], list[str]]:
    """The class-embedding model of a training checkpoint, the run's composed config, and the dropped heads.

    Keeps `model.*` weights; everything else (PARADE heads under `auxiliary.*`, losses) is dropped.
    """
    saved = load_checkpoint(checkpoint)
    try:
        config = saved["hyper_parameters"]["config"]
        model_cfg = config["model"]
    except (KeyError, TypeError):
        raise ValueError(
            f"{checkpoint} is not a fairdml training checkpoint (no hyper_parameters.config.model)"
        ) from None
    state = saved["state_dict"]
    model = EmbeddingModel(model_cfg["backbone"], model_cfg["embedding_dim"], None, **model_cfg["backbone_kwargs"])
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    dropped = sorted({k.split(".")[1] for k in state if k.startswith("auxiliary.")})
    return model.eval(), config, dropped


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, extra: dict | None = None, run_dir: Path | None = None
) -> dict[str, Path]:
    """Write `out` (.pt) and, beside it, model.safetensors + config.json of a training checkpoint's model.

    `run_dir`: the run whose selected checkpoint this is (`extra["selection"]`): config.json then names the run,
    the selection and the run's report.json (relative to the folder), which describes exactly these weights.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    model, config, dropped = load_trained_model(checkpoint)
    if dropped:
        message = f"export: dropped training-only heads {dropped} (e.g. PARADE's attribute head)"
        log.warning(message)
        print(message)
    selection = (extra or {}).get("selection") or {}
    report = RunPaths(run_dir).report if run_dir is not None else None
    source = {
        "run": run_dir.name if run_dir is not None else None,
        "source_file": selection.get("checkpoint") or checkpoint.name,
        "selected_by": selected_by(selection),
        "dropped_heads": dropped,
        "report": os.path.relpath(report, out.parent) if report is not None and report.is_file() else None,
    }
    targets = {"pt": out, "weights": out.parent / WEIGHTS_FILE, "config": out.parent / CONFIG_FILE}
    extra = {"checkpoint": str(checkpoint), "dropped": dropped, **(extra or {})}
    return write_model_files(model, targets, config, source, extra=extra)


def export_run(source: str, out: str | None = None, overwrite: bool = False) -> Path:
    """Export a run folder's selected checkpoint (or a given .ckpt); returns the .pt written.

    `out`: a .pt file, or a folder (it gets model.pt). Default: `<run>/model.pt` (refused when it exists, as it
    does after training) or `<ckpt>.pt`. model.safetensors and config.json go beside the .pt.
    """
    path = Path(source)
    selection: dict = {}
    if path.is_dir():
        selection = read_selection(path)
        checkpoint, default_out = path / selection["checkpoint"], RunPaths(path).model
    else:
        checkpoint, default_out = path, path.with_suffix(".pt")
    target = _pt_target(Path(out)) if out else default_out
    for existing in (target, target.parent / WEIGHTS_FILE, target.parent / CONFIG_FILE):
        if existing.exists() and not overwrite:
            raise FileExistsError(
                f"{existing} exists; name another file or folder with --out, or replace it with --overwrite"
            )
    extra = {"selection": selection} if selection else None
    written = export_checkpoint(checkpoint, target, extra=extra, run_dir=path if selection else None)
    chosen = f" (selected by {selection['monitor']} = {selection['score']})" if selection.get("monitor") else ""
    names = f"{written['pt']}, {written['weights'].name} and {written['config'].name}"
    print(f"fairdml: exported the class-embedding model of {checkpoint}{chosen} to {names}")
    folder = str(target.parent)
    load = f"from fairdml.models.hub_folder import load_hub_folder; model = load_hub_folder({folder!r})"
    print(f"fairdml: load it back with: {load}")
    return written["pt"]


def _pt_target(out: Path) -> Path:
    """`--out`: a .pt file, or a folder (an existing one, or a name without a suffix) that gets model.pt."""
    if out.is_dir() or not out.suffix:
        return out / MODEL_FILE
    if out.name in (WEIGHTS_FILE, CONFIG_FILE):
        raise ValueError(f"--out {out}: {out.name} is the name of the Hub pair written beside the .pt; name a .pt file")
    return out
