"""The names of a run folder's files, in one place (no heavy imports: `fairdml compare` and the card read it).

`fairdml train` writes them, `audit` writes the report and card, and `card`, `compare`, `evaluate`, `export`
and the sweep runner read them; docs/architecture.md describes each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "config.yaml"
REPORT_FILE = "report.json"
EMBEDDINGS_FILE = "embeddings_test.npz"
DATA_SUMMARY_FILE = "data_summary.json"
SELECTION_FILE = "selection.json"
MODEL_FILE = "model.pt"
WANDB_RUN_ID_FILE = "wandb_run_id.txt"  # the W&B run a resume continues
CHECKPOINTS_DIR = "checkpoints"
CSV_DIR = "csv"


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run folder's files."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # a str folder works too

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def embeddings(self) -> Path:
        return self.root / EMBEDDINGS_FILE

    @property
    def data_summary(self) -> Path:
        return self.root / DATA_SUMMARY_FILE

    @property
    def selection(self) -> Path:
        return self.root / SELECTION_FILE

    @property
    def model(self) -> Path:
        return self.root / MODEL_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR
