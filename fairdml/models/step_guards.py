"""Guards of a training run against non-finite numbers, and the errors that say where and why they appeared.

Why here and not in the LightningModule: the guards are the same for any module that trains on a loss, and
the module should read as the DML method (model, loss, evaluation), not as its failure handling.
"""

from __future__ import annotations

import torch
from torch import nn


class NonfiniteWatch:
    """Non-finite losses noticed on the device and reported at the next read, so a step costs no host sync.

    `observe` keeps a running "any non-finite since the last read" flag, the first bad step's index in the
    window and its loss terms, all as device tensors updated with `torch.where` (no `if` on a tensor);
    the host keeps each step's (epoch, global step, batch) in a list. `check` moves all of it to the host in
    one transfer and raises FloatingPointError naming the first bad step. The module checks every
    `nonfinite_check_every` steps, at the epoch's end, before validation and before a checkpoint is written,
    so no checkpoint of NaN weights is saved silently; up to N − 1 steps may run on NaN weights before.

    Args:
        every: training steps between reads (`nonfinite_check_every`), >= 1.

    Example:
        >>> watch = NonfiniteWatch(every=2)
        >>> watch.observe(torch.tensor(0.5), {"class": torch.tensor(0.5)}, (0, 0, 0))
        >>> watch.due(), watch.check()
        (False, 0.5)
    """

    def __init__(self, every: int = 50):
        if every < 1:
            raise ValueError(f"nonfinite_check_every={every}: must be >= 1 (steps between reads)")
        self.every = every
        self._positions: list[tuple[int, int, int]] = []  # (epoch, global step, batch) of each observed step
        self._names: list[str] = []
        self._state: torch.Tensor | None = None  # [seen, first bad index, last loss, *first bad loss and terms]

    def observe(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], position: tuple[int, int, int]) -> None:
        """Record one step's loss and terms on their device (no host read); `position` is (epoch, step, batch)."""
        values = torch.stack([loss.detach().float().reshape(()), *(_scalar(v, loss) for v in terms.values())])
        names = list(terms)
        if self._state is not None and (names != self._names or self._state.device != values.device):
            self.check()  # the terms changed (rare): report the window so far before starting a new record
        if self._state is None or not self._positions:
            self._state = torch.zeros(3 + len(values), device=values.device)
            self._names = names
        seen, first_index, record = self._state[0], self._state[1], self._state[3:]
        bad = ~torch.isfinite(values[0])
        first = bad & (seen == 0)
        self._state = torch.cat([
            (seen.bool() | bad).float()[None],
            torch.where(first, float(len(self._positions)), first_index)[None],
            values[:1],
            torch.where(first, values, record),
        ])  # fmt: skip
        self._positions.append(position)

    def due(self) -> bool:
        return len(self._positions) >= self.every

    def check(self) -> float | None:
        """Read the window (one host transfer); raise if a step in it was non-finite, else return the last
        loss (None when nothing was observed since the last read)."""
        if self._state is None or not self._positions:
            return None
        seen, first_index, last_loss, loss, *values = self._state.tolist()
        positions, self._positions = self._positions, []
        if seen:
            epoch, global_step, batch_idx = positions[int(first_index)]
            terms = dict(zip(self._names, values, strict=True))
            raise FloatingPointError(
                f"non-finite loss {loss} at epoch {epoch}, global step {global_step}, batch {batch_idx}; "
                f"terms: {terms} (found at the check every nonfinite_check_every={self.every} steps). "
                "Set nan_policy=skip to skip such batches (they are counted)."
            )
        return last_loss


def _scalar(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    value = value.detach().float().reshape(())
    return value if value.device == like.device else value.to(like.device)


def diverged_hint(optim_cfg: dict) -> str:
    """The likely cause of NaN in full precision, with the rates the run used (what to lower)."""
    return (
        f"training diverged (optim.lr={optim_cfg['lr']}, optim.backbone_lr={optim_cfg['backbone_lr']}): lower "
        f"the learning rates"
    )


def nonfinite_embeddings_error(
    error: RuntimeError, precision: str, optim_cfg: dict, position: tuple[int, int, int]
) -> FloatingPointError:
    """The error for a miner or loss that failed on non-finite embeddings (some PML miners fail outright on NaN),
    naming the step and the likely cause: fp16's range under `16-mixed`, else divergence."""
    epoch, global_step, batch_idx = position
    cause = (
        "an activation beyond fp16's range (65504) under 16-mixed: prefer bf16-mixed, or lower the learning rate"
        if precision.startswith("16")
        else diverged_hint(optim_cfg)
    )
    return FloatingPointError(
        f"non-finite embeddings at epoch {epoch}, global step {global_step}, batch "
        f"{batch_idx}; the miner or loss failed on them ({str(error).splitlines()[0][:80]}). Likely "
        f"cause: {cause}. Set nan_policy=skip to skip such batches (they are counted)."
    )


def nonfinite_model_error(
    split: str, module: nn.Module, optim_cfg: dict, epoch: int, global_step: int
) -> FloatingPointError:
    """The error for an evaluation whose embeddings are NaN or inf: the model itself diverged, so it names the
    largest weight (where the blow-up shows) and the learning rates."""
    tensors = [(n, t) for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_floating_point()]
    name, largest = max(((n, t.detach().abs().max().item()) for n, t in tensors), key=lambda item: item[1])
    return FloatingPointError(
        f"{split}: the model's embeddings are NaN or inf after epoch {epoch}, global step "
        f"{global_step} (largest weight |{largest:.3g}| in {name}): {diverged_hint(optim_cfg)}"
    )
