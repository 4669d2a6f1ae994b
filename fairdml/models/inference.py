"""The one embedding loop: a model over a dataset view, batched, without gradients, on the GPU when there is one.

`fairdml evaluate` (a run without embeddings_test.npz) and `fairdml audit --model` both embed through it, so
the two cannot drift apart (order, device, precision).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """`None` or "auto": `cuda` when there is one, else `cpu`; a named device must exist."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU; use auto or cpu")
    return device


def embed_dataset(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int,
    device: torch.device | str | None = None,
    mixed_precision: bool = True,
    progress: bool = False,
    num_workers: int = 0,
) -> np.ndarray:
    """(N, D) float32 embeddings of `dataset`'s `image`s, in dataset order.

    `mixed_precision` is bf16 autocast, used only on a GPU (on the CPU it is slow and changes the figures).
    `progress` shows a tqdm bar on stderr. The model is put in eval mode (BatchNorm statistics, dropout).
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    autocast = mixed_precision and device.type == "cuda"
    batches = loader
    if progress:
        from tqdm import tqdm

        batches = tqdm(loader, desc="embedding", unit="batch", file=sys.stderr, dynamic_ncols=True)
    chunks = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        for batch in batches:
            output = model(batch["image"].to(device, non_blocking=True))
            if not isinstance(output, torch.Tensor) or output.ndim != 2:
                what = type(output).__name__ if not isinstance(output, torch.Tensor) else f"shape {tuple(output.shape)}"
                raise ValueError(f"the model must map (B, 3, H, W) images to (B, D) embeddings, it returned {what}")
            chunks.append(output.float().cpu())
    if not chunks:
        raise ValueError("nothing to embed: the split is empty")
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)
