"""A run's loggers: a CSV logger always (local files that need no W&B), W&B offline by default."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import Logger

from fairdml.loggers.csv_logger import ResumableCSVLogger
from fairdml.loggers.wandb_logger import create_wandb_logger


def create_loggers(
    logger_cfg: dict, run_dir: Path, run_name: str, config: dict, csv_keep_rows: int | None = None
) -> list[Logger]:
    """CSV logger (if `logger.csv`) and the W&B logger (if enabled and it starts).

    `csv_keep_rows`: on a resume, the `metrics.csv` rows the checkpoint had seen; later rows are dropped.
    """
    loggers: list[Logger] = []
    if logger_cfg["csv"]:
        loggers.append(ResumableCSVLogger(save_dir=str(run_dir), name="csv", version="", keep_rows=csv_keep_rows))
    wandb_logger = create_wandb_logger(logger_cfg["wandb"], run_dir, run_name, config)
    if wandb_logger is not None:
        loggers.append(wandb_logger)
    return loggers
