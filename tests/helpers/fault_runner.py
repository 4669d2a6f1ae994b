"""`fairdml train` with one injected SIGKILL, for tests/test_faults.py (run as a script, never imported).

    python tests/helpers/fault_runner.py FAULT [key=value ...]

FAULT is one of:
- `none`: no fault (the uninterrupted reference run, in the same kind of process);
- `train:E:B`: killed after training batch B of epoch E;
- `validation:E`: killed during epoch E's validation;
- `checkpoint_write:N`: killed halfway through writing the N-th checkpoint file (half of it on disk).
SIGKILL gives the process no chance to clean up, as when a node is lost or the OOM killer strikes.
"""

from __future__ import annotations

import os
import signal
import sys

import torch
from lightning.pytorch.callbacks import Callback

import fairdml.train as train
from fairdml.config import compose_config


def _kill() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Killer(Callback):
    def __init__(self, where: str, epoch: int, batch: int = 0) -> None:
        self.where, self.epoch, self.batch = where, epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if self.where == "train" and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            _kill()

    def on_validation_batch_end(self, trainer, *args, **kwargs) -> None:  # noqa: ANN001, ANN002
        if self.where == "validation" and not trainer.sanity_checking and trainer.current_epoch == self.epoch:
            _kill()


def _kill_during_checkpoint_write(n: int) -> None:
    real_save, count = torch.save, [0]

    def save(obj, f, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if isinstance(f, (str, os.PathLike)) and ".ckpt." in os.fspath(f):
            count[0] += 1
            if count[0] == n:
                real_save(obj, f, *args, **kwargs)
                os.truncate(f, os.path.getsize(f) // 2)
                _kill()
        return real_save(obj, f, *args, **kwargs)

    torch.save = save


def main(fault: str, overrides: list[str]) -> None:
    kind, *numbers = fault.split(":")
    if kind == "checkpoint_write":
        _kill_during_checkpoint_write(int(numbers[0]))
    elif kind in ("train", "validation"):
        build = train.build_callbacks
        killer = Killer(kind, *(int(n) for n in numbers))
        train.build_callbacks = lambda *args: [*build(*args), killer]
    elif kind != "none":
        raise SystemExit(f"unknown fault {fault!r}")
    train.run_training(compose_config(overrides))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
