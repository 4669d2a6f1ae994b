"""Loggers for every run: a CSV logger always (local files that need no W&B), W&B offline by default.

Online `wandb.init` without a network hangs and then raises inside `Trainer.fit` (PITFALLS.md), so W&B
is offline unless the user asks for online and has a key, and a W&B failure never kills the run.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger


def wandb_mode(requested: str) -> str:
    """Online only when asked and a key is present; otherwise offline (or disabled)."""
    if requested not in ("offline", "online", "disabled"):
        raise ValueError(f"logger.wandb.mode must be offline, online or disabled, got {requested!r}")
    if requested == "online" and not os.environ.get("WANDB_API_KEY"):
        warnings.warn("logger.wandb.mode=online but WANDB_API_KEY is not set: logging offline", stacklevel=2)
        return "offline"
    return requested


def create_loggers(logger_cfg: dict, run_dir: Path, run_name: str, config: dict) -> list[Logger]:
    loggers: list[Logger] = []
    if logger_cfg["csv"]:
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
    wandb_cfg = logger_cfg["wandb"]
    if wandb_cfg["enabled"] and wandb_mode(wandb_cfg["mode"]) != "disabled":
        try:
            wandb_logger = WandbLogger(
                project=wandb_cfg["project"], entity=wandb_cfg["entity"], name=run_name,
                save_dir=str(run_dir), mode=wandb_mode(wandb_cfg["mode"]), tags=list(wandb_cfg["tags"]),
                log_model=wandb_cfg["log_model"], config=config,
            )  # fmt: skip
            loggers.append(wandb_logger)
        except Exception as error:  # noqa: BLE001 - tracking must never kill a run
            warnings.warn(f"W&B logger disabled: {error}", stacklevel=2)
    return loggers
