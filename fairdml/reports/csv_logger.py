"""A CSV logger whose metrics file survives a resumed run.

Lightning's CSV writer deletes an existing `metrics.csv` when a run restarts in the same folder, so
resuming a killed run would lose its history. This writer keeps the old rows and appends to them.
"""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _KeepingExperimentWriter(ExperimentWriter):
    """Lightning's writer, minus the deletion: start from the header of the file already there."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys = sorted(header)


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` that appends to an existing `metrics.csv` instead of replacing it."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
