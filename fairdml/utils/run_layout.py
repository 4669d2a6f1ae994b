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
DATA_CARD_JSON_FILE = "data_card.json"  # `fairdml datacard`, or `fairdml train` (fairdml.reports.datacard)
DATA_CARD_HTML_FILE = "data_card.html"
SELECTION_FILE = "selection.json"
MODEL_FILE = "model.pt"
WANDB_RUN_ID_FILE = "wandb_run_id.txt"  # the W&B run a resume continues
CHECKPOINTS_DIR = "checkpoints"
CSV_DIR = "csv"
RUN_MARKER_FILE = ".fairdml-run"  # written first into every run folder: its id; the proof overwrite=true needs

# Every name a run writes in its folder (files and folders; `embeddings_*.npz` by pattern): what overwrite=true
# clears, and nothing else.
RUN_OWNED = (
    RUN_MARKER_FILE, CONFIG_FILE, REPORT_FILE, "report.csv", DATA_SUMMARY_FILE, DATA_CARD_JSON_FILE,
    DATA_CARD_HTML_FILE, SELECTION_FILE, MODEL_FILE, WANDB_RUN_ID_FILE, CHECKPOINTS_DIR, CSV_DIR, "wandb",
    "MODEL_CARD.md", "model_card.html", "model_card_data.json", "train.log", "lightning_logs",
)  # fmt: skip
RUN_OWNED_PATTERNS = ("embeddings_*.npz",)
STAGING_DIR = ".fairdml-staging"  # a run's or audit's closing output set is written here whole, then renamed in
# The closing output set of a run or an audit: written together (run_folder.staged_outputs) or not at all.
OUTPUT_SET = (REPORT_FILE, "report.csv", MODEL_FILE, "MODEL_CARD.md", "model_card.html", "model_card_data.json")
RUN_OWNED = (*RUN_OWNED, STAGING_DIR)


class _File:
    """`RunPaths(folder).<attribute>` is `folder / name` (one line per file instead of a property each)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, paths: RunPaths | None, owner: type | None = None) -> Path:
        if paths is None:
            raise AttributeError(f"the path of {self.name} needs a run folder: RunPaths(folder)")
        return paths.root / self.name


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run folder's files."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # a str folder works too

    config = _File(CONFIG_FILE)
    report = _File(REPORT_FILE)
    embeddings = _File(EMBEDDINGS_FILE)
    data_summary = _File(DATA_SUMMARY_FILE)
    data_card_json = _File(DATA_CARD_JSON_FILE)
    data_card_html = _File(DATA_CARD_HTML_FILE)
    selection = _File(SELECTION_FILE)
    model = _File(MODEL_FILE)
    checkpoints = _File(CHECKPOINTS_DIR)
    wandb_run_id = _File(WANDB_RUN_ID_FILE)
    marker = _File(RUN_MARKER_FILE)
