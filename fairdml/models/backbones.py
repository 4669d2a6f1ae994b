"""timm backbone factory: any timm model name; weights from timm's hub cache or a local file, never by default.

`pretrained=True` is timm's own loader (Hugging Face hub and its cache, so `HF_HOME` and `HF_HUB_OFFLINE`
apply); `pretrained_path` is a local file, or `fairdml:TASK[-STYLE]` (`fairdml:rotations`), fairdml's own weights
(`fairdml.models.pretraining`, built once into the user's cache). Without either the backbone starts from random
weights.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.error import URLError

import timm
from huggingface_hub import constants as hub_constants
from huggingface_hub.utils import LocalEntryNotFoundError
from torch import nn

from fairdml.models.pretraining import cached_weights, is_fairdml_weights, recipe_for

log = logging.getLogger("fairdml")


def create_backbone(
    name: str, pretrained_path: str | None = None, pretrained: bool = False, **kwargs: Any
) -> nn.Module:
    """`timm.create_model(name, num_classes=0)`: a feature extractor whose output has `num_features` dims.

    Pretrained weights come from timm's hub download/cache (`pretrained=True`) or from `pretrained_path`
    (a timm/torchvision state dict, .pth/.bin/.safetensors), loaded through timm's own
    `pretrained_cfg_overlay(file=...)` so its key remapping applies.

    Raises:
        ValueError: unknown name, both sources given, or a model timm has no pretrained weights for.
        FileNotFoundError: the weights are neither on disk nor reachable (one line that says what to do).
    """
    if name not in timm.list_models() and not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:10]
        raise ValueError(f"unknown timm backbone {name!r}; similar names: {close}")
    if pretrained and pretrained_path is not None:
        raise ValueError("model.pretrained=true and model.pretrained_path are both set; choose one weight source")
    if pretrained:
        return _create_from_hub(name, **kwargs)
    if pretrained_path is None:
        return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    if is_fairdml_weights(pretrained_path):  # fairdml's own pretraining, built once and cached
        resolved = cached_weights(recipe_for(pretrained_path, name))
        log.info("fairdml: model.pretrained_path=%s is %s", pretrained_path, resolved)
        pretrained_path = str(resolved)
    path = Path(pretrained_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained_path: no weights file at {path}")
    return timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}, **kwargs)


def _create_from_hub(name: str, **kwargs: Any) -> nn.Module:
    """timm's own download and cache; a missing copy becomes one line instead of the hub's traceback."""
    if not timm.is_model_pretrained(name):
        raise ValueError(
            f"model.pretrained=true: timm has no pretrained weights for backbone {name!r}; "
            f"give a local file with model.pretrained_path=FILE or train from scratch (model.pretrained=false)"
        )
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, **kwargs)
    except (LocalEntryNotFoundError, ConnectionError, URLError) as error:
        raise FileNotFoundError(_unavailable_message(name)) from error


def _unavailable_message(name: str) -> str:
    source = timm.models.get_pretrained_cfg(name)
    hub_id = f" ({source.hf_hub_id})" if source is not None and source.hf_hub_id else ""
    reach = "HF_HUB_OFFLINE is set" if hub_constants.HF_HUB_OFFLINE else "the hub could not be reached"
    return (
        f"model.pretrained=true: backbone {name!r} needs its weights from the Hugging Face hub{hub_id} through "
        f"timm, but {reach} and the cache {hub_constants.HF_HUB_CACHE} has no copy; connect to the internet once "
        f"(timm caches them), or set HF_HOME to a cache that has them, or give a local file with "
        f"model.pretrained_path=FILE"
    )


def feature_dim(backbone: nn.Module) -> int:
    return int(backbone.num_features)


def freeze_batchnorm_stats(module: nn.Module) -> None:
    """Put BatchNorm layers in eval mode (small class-balanced batches make running stats noisy)."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()
