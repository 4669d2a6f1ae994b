"""`fairdml export`: the class-embedding model alone, from a run folder or a training checkpoint.

From a run folder it exports the checkpoint the run itself selected (recorded in `selection.json` with
its monitor and score), never one guessed from file names, and it never replaces an existing file unless
asked: the run's own `model.pt` is the tested model.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fairdml.models.embedding import EmbeddingModel, save_embedding_model
from fairdml.run_folder import load_checkpoint, read_selection
from fairdml.run_layout import RunPaths

log = logging.getLogger("fairdml")


def export_checkpoint(checkpoint: str | Path, out: str | Path, extra: dict | None = None) -> Path:
    """Keep `model.*` weights; everything else (PARADE heads under `auxiliary.*`, losses) is dropped."""
    checkpoint = Path(checkpoint)
    saved = load_checkpoint(checkpoint)
    try:
        model_cfg = saved["hyper_parameters"]["config"]["model"]
    except (KeyError, TypeError):
        raise ValueError(
            f"{checkpoint} is not a fairdml training checkpoint (no hyper_parameters.config.model)"
        ) from None
    state = saved["state_dict"]
    model = EmbeddingModel(model_cfg["backbone"], model_cfg["embedding_dim"], None, **model_cfg["backbone_kwargs"])
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    dropped = sorted({k.split(".")[1] for k in state if k.startswith("auxiliary.")})
    if dropped:
        message = f"export: dropped training-only heads {dropped} (e.g. PARADE's attribute head)"
        log.warning(message)
        print(message)
    extra = {"checkpoint": str(checkpoint), "dropped": dropped, **(extra or {})}
    return save_embedding_model(model, out, extra=extra)


def export_run(source: str, out: str | None = None, overwrite: bool = False) -> Path:
    """Export a run folder's selected checkpoint (or a given .ckpt) to `out`.

    Default `out`: `<run>/model.pt` (refused when it exists, as it does after training) or `<ckpt>.pt`.
    """
    path = Path(source)
    selection: dict = {}
    if path.is_dir():
        selection = read_selection(path)
        checkpoint, default_out = path / selection["checkpoint"], RunPaths(path).model
    else:
        checkpoint, default_out = path, path.with_suffix(".pt")
    target = Path(out) if out else default_out
    if target.is_dir():
        raise IsADirectoryError(f"--out {target} is a folder; name the .pt file to write")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; name another file with --out, or replace it with --overwrite")
    written = export_checkpoint(checkpoint, target, extra={"selection": selection} if selection else None)
    chosen = f" (selected by {selection['monitor']} = {selection['score']})" if selection.get("monitor") else ""
    print(f"fairdml: exported the class-embedding model of {checkpoint}{chosen} to {written}")
    return written
