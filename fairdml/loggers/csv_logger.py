"""A CSV logger whose metrics file survives a resumed run, with exactly one row per logged step.

Lightning's CSV writer deletes an existing `metrics.csv` when a run restarts in the same folder, so
resuming a killed run would lose its history; appending instead would log the replayed part of the
interrupted epoch twice. This writer keeps the rows the resumed checkpoint had seen (`keep_rows`, recorded
by `fairdml.callbacks.run_state.RunState`), drops the rest, and appends from there. It counts the rows it
has on disk, and rewrites the file (a new header) atomically.
"""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from fairdml.utils.atomic import atomic_path


def _read_rows(path: str) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


class _KeepingExperimentWriter(ExperimentWriter):
    """Lightning's writer, minus the deletion: start from the file already there, cut to `keep_rows`."""

    def __init__(self, log_dir: str, keep_rows: int | None = None) -> None:
        self._keep_rows = keep_rows
        self.rows_written = 0
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        header, rows = _read_rows(self.metrics_file_path)
        if self._keep_rows is not None and len(rows) != self._keep_rows:
            rows = rows[: self._keep_rows]
            self._write_all(header, rows)
        self.metrics_keys = sorted(header)
        self.rows_written = len(rows)

    def _write_all(self, fieldnames: list[str], rows: list[dict]) -> None:
        with atomic_path(self.metrics_file_path) as temporary, open(temporary, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        self._write_all(fieldnames, _read_rows(self.metrics_file_path)[1])

    def save(self) -> None:
        pending = len(self.metrics)
        super().save()
        self.rows_written += pending


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` that continues an existing `metrics.csv`; `keep_rows` cuts it back first (a resume)."""

    def __init__(self, *args, keep_rows: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._keep_rows = keep_rows

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingExperimentWriter(log_dir=self.log_dir, keep_rows=self._keep_rows)
        return self._experiment
