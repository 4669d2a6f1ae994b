"""A run's loggers: a CSV logger always (local files that need no W&B), W&B offline by default, and any other
Lightning logger the config names by `_target_`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from fairdml.loggers.csv_logger import ResumableCSVLogger
from fairdml.loggers.wandb_logger import create_wandb_logger
from fairdml.utils.targets import build_target


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
    return loggers + extra_loggers(logger_cfg.get("extra"), run_dir)


def extra_loggers(entries: Mapping[str, Any] | None, run_dir: Path) -> list[Logger]:
    """`logger.extra`: any Lightning logger by `_target_` (TensorBoard, MLflow, ...), its `save_dir` the run
    folder unless set; an entry set to null is skipped. fairdml's keys suit every one (`metrics.spec.log_name`)."""
    if isinstance(entries, DictConfig):
        entries = OmegaConf.to_container(entries, resolve=True)
    return [
        build_target(f"logger.extra.{name}", entry, Logger, "a Lightning logger", fill={"save_dir": str(run_dir)})
        for name, entry in (entries or {}).items()
        if entry is not None
    ]
