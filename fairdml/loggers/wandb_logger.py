"""The W&B logger of a run: offline by default, and a W&B failure never fails the run.

Online `wandb.init` without a network hangs and then raises inside `Trainer.fit` (PITFALLS.md), so W&B
is offline unless the user asks for online and has a key, the W&B run starts here (not lazily inside the
Trainer) with a bounded timeout and falls back to offline, and every later W&B call is guarded: a W&B
failure only warns. The W&B run id is kept in the run folder so a resumed run appends to the same W&B run,
at the resumed global step (Lightning's WandbLogger logs `trainer/global_step` as the x-axis).
"""

from __future__ import annotations

import functools
import netrc
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import Logger, WandbLogger

from fairdml.utils.atomic import write_text
from fairdml.utils.run_layout import RunPaths


def _has_wandb_key() -> bool:
    """A key in $WANDB_API_KEY or in the netrc entry `wandb login` writes (no network access)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(requested: str) -> str:
    """Online only when asked and a key is present; otherwise offline (or disabled)."""
    if requested not in ("offline", "online", "disabled"):
        raise ValueError(f"logger.wandb.mode must be offline, online or disabled, got {requested!r}")
    if requested == "online" and not _has_wandb_key():
        warnings.warn(
            "logger.wandb.mode=online but no W&B key (WANDB_API_KEY or `wandb login`): logging offline",
            stacklevel=2,
        )
        return "offline"
    return requested


# W&B's own names for its modes, as `WANDB_MODE` may hold them
_ENV_MODES = {"offline": "offline", "dryrun": "offline", "online": "online", "run": "online", "disabled": "disabled"}


def resolve_wandb_config(wandb_cfg: dict) -> dict:
    """`logger.wandb` with each unset (None) mode, project, entity and tags taken from W&B's environment
    variables, as W&B documents them, else fairdml's defaults; a value set in the config wins.

    Example:
        >>> import os
        >>> os.environ["WANDB_PROJECT"] = "faces"
        >>> resolve_wandb_config({"mode": "online", "project": None, "entity": None, "tags": None})["project"]
        'faces'
        >>> del os.environ["WANDB_PROJECT"]
    """
    resolved = dict(wandb_cfg)
    if resolved.get("mode") is None:
        env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
        if env_mode and env_mode not in _ENV_MODES:
            raise ValueError(f"WANDB_MODE={env_mode!r}: W&B knows {sorted(_ENV_MODES)}")
        resolved["mode"] = _ENV_MODES.get(env_mode, "offline")
    if resolved.get("project") is None:
        resolved["project"] = os.environ.get("WANDB_PROJECT") or "fairdml"
    if resolved.get("entity") is None:
        resolved["entity"] = os.environ.get("WANDB_ENTITY") or None
    if resolved.get("tags") is None:
        resolved["tags"] = [tag.strip() for tag in os.environ.get("WANDB_TAGS", "").split(",") if tag.strip()]
    return resolved


def _guarded(method: Callable) -> Callable:
    """Run a logger method; on any exception warn once and turn this W&B logger off."""

    @functools.wraps(method)
    def wrapper(self: SafeWandbLogger, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - tracking must never kill a run
            self.broken = True
            warnings.warn(f"W&B logging stopped after {method.__name__} failed: {error!r}", stacklevel=2)
            return None

    return wrapper


class SafeWandbLogger(WandbLogger):
    """Lightning's WandbLogger whose failures warn instead of raising."""

    broken = False

    log_metrics = _guarded(WandbLogger.log_metrics)
    log_hyperparams = _guarded(WandbLogger.log_hyperparams)
    log_table = _guarded(WandbLogger.log_table)
    log_image = _guarded(WandbLogger.log_image)
    after_save_checkpoint = _guarded(WandbLogger.after_save_checkpoint)
    finalize = _guarded(WandbLogger.finalize)


def wandb_run_id(run_dir: Path) -> str:
    """The id stored in the run folder (a resume), else the W&B agent's $WANDB_RUN_ID, else a new one."""
    path = RunPaths(run_dir).wandb_run_id
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    if os.environ.get("WANDB_RUN_ID"):
        return os.environ["WANDB_RUN_ID"]
    from wandb.sdk.lib.runid import generate_id  # the id format wandb.init itself makes

    return generate_id()


def _start_wandb(wandb_cfg: dict, mode: str, run_dir: Path, run_name: str, config: dict) -> SafeWandbLogger:
    """Create the logger and start its W&B run now, so a hang or failure happens here, bounded and caught.
    `wandb_cfg` is resolved (`resolve_wandb_config`)."""
    import wandb

    run_id = wandb_run_id(run_dir)
    logger = SafeWandbLogger(
        project=wandb_cfg["project"], entity=wandb_cfg["entity"], name=run_name,
        save_dir=os.environ.get("WANDB_DIR") or str(run_dir), mode=mode, tags=list(wandb_cfg["tags"]),
        log_model=wandb_cfg["log_model"], config=config, id=run_id,
        settings=wandb.Settings(init_timeout=float(wandb_cfg["init_timeout"])),
    )  # fmt: skip
    # Lightning always passes `anonymous`, which W&B (0.19+) ignores with a warning in every run
    logger._wandb_init.pop("anonymous", None)
    logger.experiment  # noqa: B018 - starts the W&B run on rank zero (a dummy on the others)
    if rank_zero_only.rank == 0:
        write_text(RunPaths(run_dir).wandb_run_id, run_id + "\n")
    return logger


def create_wandb_logger(wandb_cfg: dict, run_dir: Path, run_name: str, config: dict) -> SafeWandbLogger | None:
    """The W&B logger, or None (with a warning) when W&B cannot start even offline."""
    wandb_cfg = resolve_wandb_config(wandb_cfg)
    mode = wandb_mode(wandb_cfg["mode"])
    if not wandb_cfg["enabled"] or mode == "disabled":
        return None
    try:
        return _start_wandb(wandb_cfg, mode, run_dir, run_name, config)
    except Exception as error:  # noqa: BLE001 - tracking must never kill a run
        if mode != "online":
            warnings.warn(f"W&B logger disabled: {error!r}", stacklevel=2)
            return None
        warnings.warn(f"W&B online start failed ({error!r}); logging offline (`wandb sync` later)", stacklevel=2)
    _finish_current_run()
    try:
        return _start_wandb(wandb_cfg, "offline", run_dir, run_name, config)
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"W&B logger disabled: {error!r}", stacklevel=2)
        return None


def find_wandb_logger(loggers: list[Logger]) -> SafeWandbLogger | None:
    """The working W&B logger among a trainer's loggers, if any."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and not getattr(logger, "broken", False):
            return logger  # type: ignore[return-value]
    return None


@rank_zero_only
def log_run_files(loggers: list[Logger], run_dir: Path, log_model: bool) -> None:
    """After the test: the finDML report as a W&B file; with `log_model`, `model.pt` as a model artifact."""
    logger = find_wandb_logger(loggers)
    if logger is None:
        return
    try:
        import wandb

        run = logger.experiment
        report = RunPaths(run_dir).report
        if report.is_file():
            run.save(str(report), base_path=str(run_dir), policy="now")
        model = RunPaths(run_dir).model
        if log_model and model.is_file():
            # not `model-<id>`: Lightning's WandbLogger gives that name to the checkpoint artifacts
            artifact = wandb.Artifact(name=f"embedding-model-{run.id}", type="model", metadata={"format": "fairdml"})
            artifact.add_file(str(model))
            if report.is_file():
                artifact.add_file(str(report))
            run.log_artifact(artifact, aliases=["latest", "exported"])
    except Exception as error:  # noqa: BLE001 - tracking must never kill a run
        warnings.warn(f"W&B could not log the run files: {error!r}", stacklevel=2)


def _finish_current_run() -> None:
    try:
        import wandb

        if wandb.run is not None:
            wandb.run.finish()
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"W&B finish failed: {error!r}", stacklevel=2)


@rank_zero_only
def finish_loggers(loggers: list[Logger]) -> None:
    """Close the W&B run so its files are complete when `run_training` returns (not only at exit)."""
    if find_wandb_logger(loggers) is not None:
        _finish_current_run()
