"""timm backbone factory: any timm model name, weights only from a local file (nothing downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
from torch import nn


def create_backbone(name: str, pretrained_path: str | None = None, **kwargs: Any) -> nn.Module:
    """`timm.create_model(name, num_classes=0)`: a feature extractor whose output has `num_features` dims.

    Pretrained weights come from `pretrained_path` (a timm/torchvision state dict, .pth/.bin/.safetensors),
    loaded through timm's own `pretrained_cfg_overlay(file=...)` so its key remapping applies.
    """
    if name not in timm.list_models() and not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:10]
        raise ValueError(f"unknown timm backbone {name!r}; similar names: {close}")
    if pretrained_path is None:
        return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    path = Path(pretrained_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained_path: no weights file at {path}")
    return timm.create_model(
        name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}, **kwargs
    )


def feature_dim(backbone: nn.Module) -> int:
    return int(backbone.num_features)


def freeze_batchnorm_stats(module: nn.Module) -> None:
    """Put BatchNorm layers in eval mode (small class-balanced batches make running stats noisy)."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()
