"""The GPU half of the decoded-cache pipeline: crop, resize, flip and normalise a batch on its device.

`torchvision.ops.roi_align` does every sample's crop-and-resize in one batched kernel: bilinear, with as many
samples per output pixel as the crop is larger than the output (`sampling_ratio=0`): one when enlarging, as a
resize does, and an average of 2×2 when shrinking, which smooths as an antialiased resize does. The flip and the
normalisation are elementwise. On the CPU the same code runs, so it is tested there against the PIL path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import roi_align


def finish_images(
    pixels: torch.Tensor,  # (B, 3, S, S) uint8, as cached
    crops: torch.Tensor,  # (B, 4) float (y0, x0, y1, x1) in the slot's pixels, end exclusive
    flips: torch.Tensor,  # (B,) bool
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """(B, 3, image_size, image_size) float32 images, normalised as the PIL path's `v2.Normalize`."""
    batch = pixels.shape[0]
    boxes = torch.cat(
        [torch.arange(batch, device=pixels.device, dtype=torch.float32)[:, None], crops[:, [1, 0, 3, 2]].float()],
        dim=1,
    )  # roi_align's (index, x0, y0, x1, y1); aligned=True reads pixel i as the square [i, i + 1)
    images = roi_align(pixels.float(), boxes, (image_size, image_size), 1.0, sampling_ratio=0, aligned=True)
    images = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    mean_ = torch.tensor(mean, device=images.device).view(1, -1, 1, 1) * 255
    std_ = torch.tensor(std, device=images.device).view(1, -1, 1, 1) * 255
    return (images - mean_) / std_
