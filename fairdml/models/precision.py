"""Mixed precision: what runs in low precision under `bf16-mixed` / `16-mixed`, and what never does.

Lightning's autocast covers a step (`training_step`, `test_step`, ...), not every hook, so a tensor a callback
receives can be bf16 while a head it owns is float32 (`F.linear` then fails: "mat1 and mat2 must have the same
dtype"). fairdml's rule: the backbone and the heads run under autocast (that is where the time goes); losses,
miners, PARADE's de-correlation statistics and everything a report is computed from run in float32, outside
autocast. Why: bf16 keeps 8 bits of mantissa, so a cosine similarity near 1 or a batch covariance loses most of
its digits, and a report figure must not depend on the precision the run trained in.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import nn

# Lightning's names for the precisions fairdml trains in (`trainer.precision`); the "-true" half precisions
# (weights stored in bf16/fp16) are refused by the config check: the PML losses' own parameters and the
# float32 statistics above would meet half-precision weights.
SUPPORTED_PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "64-true", "64")
LOW_PRECISION = (torch.float16, torch.bfloat16)


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in float32 if it is bf16/fp16 (a differentiable cast), else unchanged (float64 stays)."""
    return tensor.float() if tensor.dtype in LOW_PRECISION else tensor


def without_autocast(device: torch.device | str) -> AbstractContextManager:
    """A region where autocast is off, on whichever device the tensors live (float32 maths inside)."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, enabled=False)


def call_in_own_precision(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """`module(inputs)` outside autocast, the inputs cast to the module's parameter dtype, the output in
    float32 (at least): safe whatever precision the caller's tensors come in."""
    parameter = next(module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    with without_autocast(inputs.device):
        return full_precision(module(inputs.to(dtype)))
