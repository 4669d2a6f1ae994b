"""Resume and init_from: which checkpoint a run continues from, checked to be the same run with the same
settings before the run folder is touched, and the weights a new run starts from."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fairdml.callbacks.run_state import recorded_csv_rows, recorded_run_id
from fairdml.config import to_container
from fairdml.models.module import DMLModule
from fairdml.utils.nested import dotted_keys
from fairdml.utils.run_folder import load_checkpoint, prepare_run_dir, remove_orphan_checkpoints, run_id
from fairdml.utils.run_layout import RunPaths

# What may differ between a run's config.yaml and the config that resumes it: where the folder is (it may have
# been moved), how long to train, and settings that change no figure. Any other difference is refused.
RESUMABLE_KEYS = (
    "resume", "overwrite", "run_dir", "output_dir", "trainer.max_epochs", "trainer.enable_progress_bar",
    "data.num_workers", "data.pin_memory", "data.persistent_workers", "evaluation.model_card",
    "evaluation.card_inputs", "logger.wandb.mode", "logger.wandb.enabled", "logger.wandb.media",
    "logger.wandb.project", "logger.wandb.entity", "logger.wandb.log_model", "logger.wandb.init_timeout",
    "logger.wandb.tags",
)  # fmt: skip


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> tuple[str, dict] | None:
    """The checkpoint to continue from and its contents, after checking that it is this run's own and that
    the settings are the run's (`RESUMABLE_KEYS` aside): a resume continues the same run, or it is refused
    before any write."""
    if cfg.resume is None:
        return None
    if cfg.overwrite:
        raise ValueError(
            "resume and overwrite=true contradict each other: resume continues the run, overwrite clears it"
        )
    if cfg.get("init_from"):
        raise ValueError(
            "resume and init_from contradict each other: resume continues a run, init_from starts a new one from "
            "another run's weights"
        )
    path = RunPaths(run_dir).checkpoints / "last.ckpt" if cfg.resume == "last" else Path(cfg.resume)
    if not path.is_file():
        hint = (
            "nothing to resume: the run was stopped before its first checkpoint; start it again with overwrite=true"
            if RunPaths(run_dir).config.is_file()
            else "set run_dir to the folder of the run to resume"
        )
        raise FileNotFoundError(f"resume={cfg.resume!r}: no checkpoint at {path} ({hint})")
    if path.resolve().parent != RunPaths(run_dir).checkpoints.resolve():
        raise ValueError(
            f"resume={cfg.resume} is not a checkpoint of run_dir={run_dir} (it is in {path.parent}): resume "
            f"continues the run in run_dir. To start a new run from its weights, use init_from={cfg.resume}"
        )
    checkpoint = load_checkpoint(path)  # a corrupt or unsafe file is named before the settings are compared
    check_same_run(checkpoint, str(path), run_dir)
    saved_path = RunPaths(run_dir).config
    if saved_path.is_file():
        changed = changed_keys(to_container(OmegaConf.load(saved_path)), to_container(cfg))
        changed = [key for key in changed if key not in RESUMABLE_KEYS]
        if changed:
            raise ValueError(
                f"resume refused: these settings differ from {saved_path}: {', '.join(changed)}. A resumed run "
                f"must be the same run (only {', '.join(RESUMABLE_KEYS[2:])} may change); for other settings start "
                f"a new run, e.g. with init_from={path}"
            )
    return str(path), checkpoint


def check_same_run(checkpoint: dict, path: str, run_dir: Path) -> None:
    """A checkpoint whose recorded run id is not the folder's (a checkpoints folder copied in from another
    run) is refused; checkpoints written before ids existed pass on their location alone."""
    recorded, own = recorded_run_id(checkpoint), run_id(run_dir)
    if recorded is not None and own is not None and recorded != own:
        raise ValueError(
            f"resume refused: {path} was written by run {recorded}, but run_dir={run_dir} is run {own} "
            f"({RunPaths(run_dir).marker.name}); to start a new run from its weights use init_from={path}"
        )


def load_initial_weights(module: DMLModule, path: str) -> None:
    """`init_from=PATH`: the class-embedding model's weights from a checkpoint or an exported model.pt, for a
    new run (its own optimiser, schedule, selection and metrics)."""
    state = load_checkpoint(path)["state_dict"]
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")} or state
    try:
        module.model.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"init_from={path}: its weights do not fit model={module.model.spec}: {first}") from None
    print(f"fairdml: init_from={path}: class-embedding weights loaded; this is a new run")


def changed_keys(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    old, new = dotted_keys(old), dotted_keys(new)
    return sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))


def prepare_resume(cfg: DictConfig, run_dir: Path, first_process: bool) -> tuple[str | None, int | None]:
    """Check everything, then prepare the folder: the checkpoint to resume from (read once here, so a corrupt
    or foreign one fails before any file is written) and the metrics.csv rows it had seen."""
    checkpoint_path, checkpoint = resume_checkpoint(cfg, run_dir) or (None, None)
    if cfg.get("init_from"):
        load_checkpoint(cfg.init_from)  # a missing or unsafe file fails now, not after the folder is made
    if not first_process:
        return checkpoint_path, None if checkpoint is None else recorded_csv_rows(checkpoint)
    prepare_run_dir(run_dir, cfg.resume, cfg.overwrite)  # the first write
    if checkpoint is None:
        return None, None
    for path in remove_orphan_checkpoints(run_dir, checkpoint, Path(checkpoint_path)):
        print(f"fairdml: removed {path.name}, written after the checkpoint this run resumes from")
    return checkpoint_path, recorded_csv_rows(checkpoint)
