"""The class-embedding model (backbone + head): what is evaluated, exported and deployed.

Kept apart from the LightningModule so that an export holds only this (no PARADE heads, no losses) and
loads with timm and torch alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fairdml.models.backbones import create_backbone, feature_dim
from fairdml.models.heads import EmbeddingHead
from fairdml.utils.atomic import atomic_path


class EmbeddingModel(nn.Module):
    """A timm backbone and a linear head to unit-norm class embeddings: what is evaluated, exported and deployed.

    `spec` (backbone, embedding_dim, backbone_kwargs) is all an export needs to rebuild the model
    (`save_embedding_model` / `load_embedding_model`); the weight sources only seed training, so it leaves them
    out: an export carries its own weights.

    Args:
        backbone: any timm model name (`test_resnet` is timm's 0.37M-parameter ResNet for tests).
        embedding_dim: D, the size of the embedding.
        pretrained_path: a local weights file for the backbone; None: none.
        pretrained: True loads timm's ImageNet weights through the Hugging Face hub cache.
        **backbone_kwargs: passed to `timm.create_model`.

    Example:
        >>> import torch
        >>> model = EmbeddingModel("test_resnet", embedding_dim=32)
        >>> embeddings = model(torch.randn(2, 3, 32, 32))
        >>> embeddings.shape, torch.allclose(embeddings.norm(dim=1), torch.ones(2))
        (torch.Size([2, 32]), True)
        >>> model.spec
        {'backbone': 'test_resnet', 'embedding_dim': 32, 'backbone_kwargs': {}}
    """

    def __init__(
        self,
        backbone: str,
        embedding_dim: int,
        pretrained_path: str | None = None,
        pretrained: bool = False,
        **backbone_kwargs,
    ):
        super().__init__()
        self.spec = {"backbone": backbone, "embedding_dim": embedding_dim, "backbone_kwargs": backbone_kwargs}
        self.backbone = create_backbone(backbone, pretrained_path, pretrained, **backbone_kwargs)
        self.head = EmbeddingHead(feature_dim(self.backbone), embedding_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images → (B, embedding_dim) unit-norm class embeddings."""
        return self.head(self.backbone(images))


def save_embedding_model(model: EmbeddingModel, path: str | Path, extra: dict | None = None) -> Path:
    """Write the class-embedding model as plain tensors + a plain-dict spec (loads with weights_only)."""
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save({"spec": model.spec, "state_dict": model.state_dict(), "extra": extra or {}}, temporary)
    return path


def load_embedding_model(path: str | Path) -> EmbeddingModel:
    """Rebuild an exported model; needs fairdml's EmbeddingModel (timm + torch), nothing of training."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {path}")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    spec = saved["spec"]
    model = EmbeddingModel(spec["backbone"], spec["embedding_dim"], None, **spec.get("backbone_kwargs", {}))
    model.load_state_dict(saved["state_dict"])
    return model.eval()
