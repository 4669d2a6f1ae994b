"""Fail the run when an epoch ends without the validation it was due.

Lightning validates at an epoch's end only when the batch it counts as the last one (from the loader's
announced `len()`) is reached. A loader that yields fewer batches than it announces ends the epoch with no
validation and no error, so checkpoint selection silently skips that epoch, and when it happens every
epoch the test silently uses the last weights. fairdml's sampler yields exactly `len()` batches; this
callback makes any regression, or a user's own loader with the same flaw, an error at the epoch it occurs.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from fairdml.utils.errors import ValidationSkippedError


class ValidationGuard(Callback):
    """Records each validated epoch (kept in checkpoints) and raises when a due validation did not run."""

    def __init__(self) -> None:
        self.validated_epochs: list[int] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.current_epoch not in self.validated_epochs:
            self.validated_epochs.append(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        every = trainer.check_val_every_n_epoch or 1
        due = trainer.enable_validation and (epoch + 1) % every == 0
        stopped_by_steps = trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps
        if due and not stopped_by_steps and epoch not in self.validated_epochs:
            progress = trainer.fit_loop.epoch_loop.batch_progress.current
            raise ValidationSkippedError(
                f"epoch {epoch} ended after {progress.completed} of {trainer.num_training_batches} announced "
                f"training batches without its validation: the train loader yields fewer batches than its "
                f"len() says, so Lightning never reached the epoch's end (checkpoint selection would skip "
                f"this epoch). Fix the loader's len(), or its batch sampler."
            )

    def state_dict(self) -> dict[str, Any]:
        return {"validated_epochs": list(self.validated_epochs)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validated_epochs = [int(e) for e in state_dict.get("validated_epochs", [])]
