"""What a checkpoint needs beyond Lightning's own so that a resumed run continues, not replays.

Lightning restores weights, optimisers, schedulers, loop counters and callback states, but not the
Python/NumPy/torch random states (augmentation, miners and the data loader's worker seeds draw from them)
and not the rows already in `csv/metrics.csv`. MosaicML Composer and torchtitan restore both; so does this
callback: at every checkpoint it flushes the CSV logger and records its row count and the RNG states; on
resume it restores the RNG states when training starts and re-creates the train loader's iterator there,
which is what follows a checkpoint in the run that wrote it (sanity checking in between runs under
`isolate_rng`). `train.py` also cuts `metrics.csv` back to the
recorded rows before the logger opens it, so the replayed part of an interrupted epoch is logged once.
The sampler's epoch and position travel in the data module's own state (`DMLDataModule.state_dict`).
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from fairdml.loggers import ResumableCSVLogger

CHECKPOINT_KEY = "fairdml_run_state"


def capture_rng_states() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain containers (loadable with `weights_only=True`)."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },  # fmt: skip
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of `capture_rng_states`."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gauss"],
        )  # fmt: skip
    )
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def csv_logger(trainer: L.Trainer) -> ResumableCSVLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, ResumableCSVLogger)), None)


class RunState(Callback):
    """Saves and restores the RNG states and the count of `metrics.csv` rows with each checkpoint, and the id
    of the run that wrote it (its folder's `.fairdml-run` marker), so a resume can prove it is the same run."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id
        self._to_restore: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        state: dict[str, Any] = {"rng": capture_rng_states(), "csv_rows": None, "run_id": self.run_id}
        logger = csv_logger(trainer)
        if logger is not None and trainer.is_global_zero:
            logger.save()  # rows logged before this point are on disk, so the count below is theirs
            state["csv_rows"] = logger.experiment.rows_written
        checkpoint[CHECKPOINT_KEY] = state

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._to_restore = checkpoint.get(CHECKPOINT_KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._to_restore is None:
            return
        restore_rng_states(self._to_restore["rng"])
        self._to_restore = None
        # The run that wrote the checkpoint created the next epoch's loader iterator after this point, and the
        # iterator draws its base seed (worker seeds) from the torch RNG. On a resume Lightning created it
        # earlier, while counting the steps for the LR schedule, before the restore; create it again now.
        # (`_data_fetcher` is Lightning's; without it the iterator stays as made, off by one draw.)
        fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
        if fetcher is not None:
            iter(fetcher)


def recorded_csv_rows(checkpoint: dict) -> int | None:
    """The `metrics.csv` row count a checkpoint recorded (None for checkpoints without one)."""
    return (checkpoint.get(CHECKPOINT_KEY) or {}).get("csv_rows")


def recorded_run_id(checkpoint: dict) -> str | None:
    """The id of the run that wrote a checkpoint (None for checkpoints written before ids were recorded)."""
    return (checkpoint.get(CHECKPOINT_KEY) or {}).get("run_id")
