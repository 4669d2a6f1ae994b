"""`fairdml export`: the class-embedding model alone, from a run folder or a training checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from fairdml.models.embedding import EmbeddingModel, save_embedding_model

log = logging.getLogger("fairdml")


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """Keep `model.*` weights; everything else (PARADE heads under `auxiliary.*`, losses) is dropped."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = saved["hyper_parameters"]["config"]
    state = saved["state_dict"]
    model_cfg = config["model"]
    model = EmbeddingModel(model_cfg["backbone"], model_cfg["embedding_dim"], None, **model_cfg["backbone_kwargs"])
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    dropped = sorted({k.split(".")[1] for k in state if k.startswith("auxiliary.")})
    if dropped:
        message = f"export: dropped training-only heads {dropped} (e.g. PARADE's attribute head)"
        log.warning(message)
        print(message)
    return save_embedding_model(model, out, extra={"checkpoint": str(checkpoint), "dropped": dropped})


def export_run(source: str, out: str | None = None) -> Path:
    path = Path(source)
    if path.is_dir():
        checkpoints = path / "checkpoints"
        best = sorted(checkpoints.glob("best-*.ckpt"))
        candidates = best or sorted(checkpoints.glob("last*.ckpt"))
        if not candidates:
            raise FileNotFoundError(f"no checkpoint under {checkpoints}")
        checkpoint, default_out = candidates[-1], path / "model.pt"
    else:
        checkpoint, default_out = path, path.with_suffix(".pt")
    written = export_checkpoint(checkpoint, out or default_out)
    print(f"fairdml: exported class-embedding model to {written}")
    return written
