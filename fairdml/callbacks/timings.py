"""Where a training run's wall time goes: `report["timings"]` of `fairdml train`, as audits have.

A slow run cannot be made faster without knowing whether the steps, the validations, the card or the writing
is slow. `RunTimings` is two clocks in one object: the run's stages (set-up, data card, fit, test, report,
export, model card), timed by `with stage(...)` blocks in `fairdml.train` and collected by `recording()`, and,
as a Lightning callback, the training batches and validations inside fit. Seconds are `time.perf_counter`
wall time; nothing is synchronised with a GPU (that would cost a host-device sync per step), so on a GPU
queued kernels may be waited for outside the step that queued them: the fit's total is exact, its split
approximate.

The timings are this process's: under DDP rank 0's (the only one that writes the report), and a resumed run
times only the steps and stages run since the resume (nothing is kept in checkpoints).

Example:
    >>> from fairdml.metrics.functional.stages import stage
    >>> timings = RunTimings()
    >>> with timings.recording():
    ...     with stage(SETUP):
    ...         pass
    >>> record = timings.as_report()
    >>> record["total"] >= record["setup"] >= 0, record["train_step_count"]
    (True, 0)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from fairdml.metrics.functional.stages import collect_stages

__all__ = ["RunTimings"]

# The run's stages, in the order they run; together they make up (almost all of) `total`.
SETUP, DATA_CARD, FIT, TEST, DOWNSTREAM, REPORT, EXPORT, MODEL_CARD = (
    "setup", "data_card", "fit", "test", "downstream", "report", "export", "model_card",
)  # fmt: skip
RUN_STAGES = (SETUP, DATA_CARD, FIT, TEST, DOWNSTREAM, REPORT, EXPORT, MODEL_CARD)
# Inside fit: the training batches, the validations, Lightning's sanity check, and the rest (loading the data
# between steps, checkpoint writing, logging) = fit - the three.
TRAIN_STEPS, VALIDATION, SANITY_CHECK, FIT_OTHER = "train_steps", "validation", "sanity_check", "fit_other"


class RunTimings(Callback):
    """Seconds of each stage of a training run and, inside fit, of its training batches and validations.

    A training batch is timed from `on_train_batch_start` to `on_train_batch_end` (forward, backward, optimiser
    step; the loader's time before it is not in it); a validation from `on_validation_start` to
    `on_validation_end` (batches and the fairness report; the checkpoint written after it is not). The
    callback keeps no state in checkpoints: a resumed run's timings are those of the resuming process.
    """

    def __init__(self) -> None:
        self.started: float | None = None
        self.stages: dict[str, float] = {}
        self.train_step_seconds, self.train_step_count = 0.0, 0
        self.validation_seconds, self.validation_count = 0.0, 0
        self.sanity_check_seconds = 0.0
        self._batch_started: float | None = None
        self._validation_started: float | None = None

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Start the run's clock and collect the seconds of every `stage` block inside."""
        self.started = time.perf_counter()
        with collect_stages() as seconds:
            self.stages = seconds
            yield

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_started = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._batch_started is not None:
            self.train_step_seconds += time.perf_counter() - self._batch_started
            self.train_step_count += 1
            self._batch_started = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_started = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._validation_started is None:
            return
        elapsed = time.perf_counter() - self._validation_started
        self._validation_started = None
        if trainer.sanity_checking:  # Lightning's few batches before training: not one of the run's validations
            self.sanity_check_seconds += elapsed
        else:
            self.validation_seconds += elapsed
            self.validation_count += 1

    def as_report(self) -> dict[str, float | int]:
        """`report["timings"]`: seconds (to the millisecond) of each run stage, 0 for one that did not run, with
        the fit's split after `fit`; `total`, from `recording()`'s start to now; the numbers of training steps and
        validations."""
        if self.started is None:
            raise RuntimeError("RunTimings.as_report: the run was not timed; call it inside `recording()`")
        inside_fit = {
            TRAIN_STEPS: self.train_step_seconds, VALIDATION: self.validation_seconds,
            SANITY_CHECK: self.sanity_check_seconds,
        }  # fmt: skip
        inside_fit[FIT_OTHER] = max(self.stages.get(FIT, 0.0) - sum(inside_fit.values()), 0.0)
        ordered: dict[str, float] = {}
        for name in RUN_STAGES:
            ordered[name] = self.stages.get(name, 0.0)
            if name == FIT:
                ordered.update(inside_fit)
        ordered["total"] = time.perf_counter() - self.started
        record: dict[str, float | int] = {name: round(value, 3) for name, value in ordered.items()}
        return record | {"train_step_count": self.train_step_count, "validation_count": self.validation_count}
