"""Gradient reversal (Ganin & Lempitsky 2015): identity forward, −scale × gradient backward.

Written by hand because nothing in fairdml's stack (torch, Lightning, timm, pytorch-metric-learning,
torchmetrics) provides it, and a ten-line `torch.autograd.Function` beats a dependency for it.
"""

from __future__ import annotations

import torch


class GradientReversal(torch.autograd.Function):
    """y = x; ∂L/∂x = −scale · ∂L/∂y: one loss trains an adversary (descends) and an encoder (ascends)."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad_output, None


def reverse_gradient(inputs: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Pass `inputs` through unchanged; its gradient comes back negated and multiplied by `scale`."""
    return GradientReversal.apply(inputs, float(scale))
