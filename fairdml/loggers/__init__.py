"""Logger set-up for `fairdml train`: CSV always, W&B offline by default (docs/tracking.md).

Modules: create.py (a run's loggers), csv_logger.py (metrics.csv that survives a resume), wandb_logger.py
(W&B: mode, guarded logger, run id kept for a resume, run files and model artifact).
"""

from fairdml.loggers.create import create_loggers
from fairdml.loggers.csv_logger import ResumableCSVLogger
from fairdml.loggers.wandb_logger import (
    SafeWandbLogger,
    create_wandb_logger,
    find_wandb_logger,
    finish_loggers,
    log_run_files,
    resolve_wandb_config,
    wandb_mode,
    wandb_run_id,
)

__all__ = [
    "ResumableCSVLogger",
    "SafeWandbLogger",
    "create_loggers",
    "create_wandb_logger",
    "find_wandb_logger",
    "finish_loggers",
    "log_run_files",
    "resolve_wandb_config",
    "wandb_mode",
    "wandb_run_id",
]
