"""Embedding heads: features → L2-normalised embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingHead(nn.Module):
    """A linear projection to `embedding_dim`, then L2 normalisation (distances live on the sphere)."""

    def __init__(self, in_features: int, embedding_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_features, embedding_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(features), dim=-1)
