"""One training job: config → data module → model (+ callbacks) → Lightning fit/test → run folder."""

from __future__ import annotations

import os
import warnings
from datetime import datetime
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from fairdml.callbacks.instantiate import instantiate_callbacks
from fairdml.callbacks.run_state import RunState
from fairdml.callbacks.selection import build_checkpoint
from fairdml.callbacks.timings import DATA_CARD, DOWNSTREAM, EXPORT, FIT, MODEL_CARD, REPORT, SETUP, TEST, RunTimings
from fairdml.callbacks.validation_guard import ValidationGuard
from fairdml.config import to_container
from fairdml.config_checks import check_config
from fairdml.data.datamodule import DMLDataModule
from fairdml.loggers import create_loggers, finish_loggers, log_run_files, resolve_wandb_config
from fairdml.loggers.noise import silence_known_noise
from fairdml.metrics.functional.stages import stage
from fairdml.metrics.spec import is_groups_section, log_name
from fairdml.models.embedding import save_embedding_model
from fairdml.models.module import DMLModule
from fairdml.reports.datacard.write import write_run_data_card
from fairdml.reports.embeddings_file import save_embeddings_npz
from fairdml.reports.report import format_headline, load_report, save_report
from fairdml.resume import load_initial_weights, prepare_resume
from fairdml.utils.atomic import write_json, write_text
from fairdml.utils.run_folder import (
    AtomicCheckpointIO,
    run_id,
    staged_outputs,
    write_selection,
)
from fairdml.utils.run_layout import RunPaths

RUN_DIR_ENV = "FAIRDML_RUN_DIR"  # shared with the processes Lightning's DDP launcher starts


def resolve_run_dir(cfg: DictConfig) -> Path:
    """cfg.run_dir, else the folder a parent DDP process chose, else outputs/<experiment>/<time>."""
    if cfg.run_dir:
        return Path(cfg.run_dir)
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    return Path(cfg.output_dir) / cfg.experiment / stamp


def build_callbacks(cfg: DictConfig, run_dir: Path, group_names: list[str]) -> list[Callback]:
    checkpoints = build_checkpoint(to_container(cfg.checkpoint), to_container(cfg.evaluation), group_names, run_dir)
    callbacks: list[Callback] = [*checkpoints, RunState(run_id(run_dir)), ValidationGuard()]
    if cfg.logger.wandb.enabled and cfg.logger.wandb.media:
        from fairdml.callbacks.wandb_media import WandbMedia

        callbacks.append(WandbMedia())
    return callbacks + instantiate_callbacks(cfg.callbacks)


def effective_precision(trainer_cfg: dict) -> str:
    """`trainer.precision`, except that `bf16-mixed` on a CUDA GPU without bf16 (before Ampere) becomes
    `16-mixed`, fp16 autocast with Lightning's gradient scaler; the switch is printed, and the report's
    `meta.precision` records what ran."""
    precision = str(trainer_cfg["precision"])
    on_gpu = trainer_cfg["accelerator"] in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    if precision == "bf16-mixed" and on_gpu and not torch.cuda.is_bf16_supported():
        print("fairdml: this GPU has no bf16; training in 16-mixed (fp16 autocast, gradient scaler) instead")
        return "16-mixed"
    return precision


def run_training(cfg: DictConfig) -> Path:
    """Train, test on held-out classes, and write the run folder (see docs/architecture.md).

    Every value is checked before any work; an existing run folder is refused unless `resume` or
    `overwrite=true` is given (docs/reliability.md). `report["timings"]` has the wall seconds of each stage
    (setup, data_card, fit and inside it train_steps, validation, sanity_check, fit_other; test, downstream,
    report, export, model_card; total, up to the report's last write) and the numbers of training steps and
    validations: this process's (rank 0's under DDP; since the resume for a resumed run, see `RunTimings`).

    Args:
        cfg: a composed training config (`compose_config`).

    Returns:
        The run folder: config.yaml, checkpoints/, report.json, embeddings_test.npz, model.pt, the card.

    Example:
        One training batch on 20 classes of the default data, in a temporary folder (a second on a CPU; the
        README's "Python API" trains a whole epoch). It prints the headline figures, as `fairdml train` does:

        >>> import json, tempfile
        >>> from fairdml.config import compose_config
        >>> temporary = tempfile.TemporaryDirectory()
        >>> cfg = compose_config([
        ...     "data.options.num_classes=20", "data.options.samples_per_class=8", "data.batch_size=16",
        ...     "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.enable_progress_bar=false",
        ...     "logger=csv", "evaluation.leakage=false", "evaluation.model_card=false",
        ...     f"run_dir={temporary.name}/run",
        ... ])
        >>> run_dir = run_training(cfg)  # doctest: +ELLIPSIS
        <BLANKLINE>
        test ...
        fairdml: run finished; outputs in .../run
        >>> report = json.loads((run_dir / "report.json").read_text())
        >>> sorted(report["groups"]), report["n"]
        (['majority', 'minority'], 48)
        >>> temporary.cleanup()
    """
    timings = RunTimings()
    with timings.recording():
        with stage(SETUP):
            check_config(cfg)
            silence_known_noise()
            for key, value in resolve_wandb_config(to_container(cfg.logger.wandb)).items():  # config.yaml: as used
                cfg.logger.wandb[key] = value
            run_dir = resolve_run_dir(cfg)
            first_process = _is_first_process(run_dir)
        previous_env = os.environ.get(RUN_DIR_ENV)
        os.environ[RUN_DIR_ENV] = str(run_dir)
        try:
            return _run(cfg, run_dir, first_process, timings)
        finally:
            if previous_env is None:
                os.environ.pop(RUN_DIR_ENV, None)
            else:
                os.environ[RUN_DIR_ENV] = previous_env


def _is_first_process(run_dir: Path) -> bool:
    """False in the processes a DDP launcher (Lightning's, torchrun, SLURM) starts besides the first."""
    if os.environ.get(RUN_DIR_ENV) == str(run_dir):  # inherited from the process that chose the folder
        return False
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in ranks)


def check_before_training(cfg: DictConfig, datamodule: DMLDataModule) -> None:
    """What would otherwise fail after training (a downstream label, the card inputs) or after the first
    validation (a monitored group the validation split lacks), checked against the data now."""
    if cfg.evaluation.downstream:
        from fairdml.evaluate import check_downstream_label

        check_downstream_label(cfg, datamodule.views["train"].attribute_names)
    if cfg.evaluation.model_card and cfg.evaluation.card_inputs:
        from fairdml.reports.card.inputs import load_card_inputs

        load_card_inputs(cfg.evaluation.card_inputs)
    monitor = str(cfg.checkpoint.monitor)
    section, _, rest = monitor.partition("/")
    named = rest.partition("/")[2] if is_groups_section(section) else None
    group = next((name for name in datamodule.group_names if log_name(name) == named), None)
    if group is not None and "val" in datamodule.views:
        codes = set(datamodule.views["val"].attribute_column(datamodule.group_attribute).tolist())
        present = [name for code, name in enumerate(datamodule.group_names) if code in codes]
        if group not in present:
            raise ValueError(
                f"checkpoint.monitor={monitor}: the validation split has no sample of group {group!r} (it has "
                f"{present}), so that figure is never logged; monitor another group or val/recall_at_1/worst"
            )


def _run(cfg: DictConfig, run_dir: Path, first_process: bool, timings: RunTimings) -> Path:
    with stage(SETUP):
        datamodule, module, trainer, checkpoint_path = _set_up(cfg, run_dir, first_process, timings)
    if trainer.is_global_zero:
        with stage(DATA_CARD):
            write_run_data_card(datamodule, run_dir, seed=cfg.seed)  # data_card.json/.html, ~1 s on digits
    with stage(FIT):
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint_path)
    guard = next(c for c in trainer.callbacks if isinstance(c, ValidationGuard))
    selection = None
    if trainer.is_global_zero:
        selection = write_selection(run_dir, trainer.checkpoint_callback, guard.validated_epochs)
    if cfg.evaluation.test_after_fit:
        _test_and_write(cfg, run_dir, module, datamodule, trainer, selection, timings)
    finish_loggers(trainer.loggers)
    if trainer.is_global_zero:
        _print_ending(run_dir)
    return run_dir


def _set_up(
    cfg: DictConfig, run_dir: Path, first_process: bool, timings: RunTimings
) -> tuple[DMLDataModule, DMLModule, L.Trainer, str | None]:
    """Everything before fit: the data, the module, the checks, the folder, the trainer (with `timings` as its
    first callback), and, on rank 0, config.yaml and data_summary.json. Returns the checkpoint to resume from."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    config = to_container(cfg)
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    datamodule.setup()
    check_before_training(cfg, datamodule)
    module = DMLModule.from_config(config, datamodule)
    if cfg.get("init_from"):
        load_initial_weights(module, cfg.init_from)
    checkpoint_path, csv_rows = prepare_resume(cfg, run_dir, first_process)  # every check done: the first write
    callbacks = [timings, *build_callbacks(cfg, run_dir, datamodule.group_names)]
    trainer_cfg = to_container(cfg.trainer)
    trainer_cfg["precision"] = effective_precision(trainer_cfg)
    trainer = L.Trainer(
        **trainer_cfg, default_root_dir=str(run_dir), use_distributed_sampler=False,
        callbacks=callbacks, plugins=[AtomicCheckpointIO()],
        logger=create_loggers(config["logger"], run_dir, f"{cfg.experiment}-{run_dir.name}", config, csv_rows),
    )  # fmt: skip
    if trainer.is_global_zero:
        write_text(RunPaths(run_dir).config, OmegaConf.to_yaml(cfg, resolve=True))
        write_json(RunPaths(run_dir).data_summary, datamodule.summary(), default=str)
    return datamodule, module, trainer, checkpoint_path


def _test_and_write(
    cfg: DictConfig, run_dir: Path, module: DMLModule, datamodule: DMLDataModule, trainer: L.Trainer,
    selection: dict | None, timings: RunTimings,
) -> None:  # fmt: skip
    """The test with the selected checkpoint, then (rank 0) the closing output set: report, embeddings, model.pt
    and card together, or none. The report is written again last with its `timings`."""
    has_best = bool(trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path)
    if has_best and not Path(trainer.checkpoint_callback.best_model_path).is_file():
        # Only after a resume whose replayed epochs differ from the interrupted ones (non-deterministic
        # kernels): the interrupted run had already replaced the checkpoint selected at the resume point.
        raise FileNotFoundError(
            f"the selected checkpoint {trainer.checkpoint_callback.best_model_path} is missing; it was "
            f"replaced by the interrupted run and this resume did not select it again (non-deterministic "
            f"training). Train again with overwrite=true, ideally with trainer.deterministic=true"
        )
    with stage(TEST):
        trainer.test(module, datamodule=datamodule, ckpt_path="best" if has_best else None, verbose=False)
    if not trainer.is_global_zero:
        return
    with staged_outputs(run_dir) as staging:
        report = _write_test_outputs(cfg, staging, module, datamodule, trainer, selection)
        if cfg.evaluation.model_card:
            from fairdml.reports.card.write import write_model_card_after

            with stage(MODEL_CARD):
                write_model_card_after("train", staging, cfg.evaluation.card_inputs, final_dir=run_dir)
        # Added last, so the other figures are written as before (and as the card read them); the CSV leaves it out.
        report["timings"] = timings.as_report()
        save_report(report, RunPaths(staging).report)
    log_run_files(trainer.loggers, run_dir, cfg.logger.wandb.log_model)


def _print_ending(run_dir: Path) -> None:
    """The run's headline figures and where everything is: what a user reads first."""
    paths = RunPaths(run_dir)
    if paths.report.is_file():
        print("\n" + format_headline(load_report(paths.report)))
        print(f"report: {paths.report} (all figures: report.csv)")
        if (run_dir / "MODEL_CARD.md").is_file():
            print(f"card: {run_dir / 'MODEL_CARD.md'} and {run_dir / 'model_card.html'}")
    print(f"fairdml: run finished; outputs in {run_dir.resolve()}")


def _write_test_outputs(
    cfg: DictConfig, out_dir: Path, module: DMLModule, datamodule: DMLDataModule, trainer: L.Trainer,
    selection: dict | None,
) -> dict:  # fmt: skip
    """report.json (+ report.csv), the test embeddings and model.pt, into `out_dir` (the run's staging folder);
    returns the report."""
    report = dict(module.reports["test"])
    selection = selection or {}
    report["meta"] = {
        "experiment": cfg.experiment,
        "seed": cfg.seed,
        "split": "test",
        "group_attribute": datamodule.group_attribute,
        "best_checkpoint": selection.get("checkpoint"),
        "best_score": selection.get("score"),
        "monitor": selection.get("monitor"),
        "validated_epochs": selection.get("validated_epochs", []),
        "epochs_trained": trainer.current_epoch,
        "skipped_nonfinite_batches": module.skipped_nonfinite,
        "precision": str(trainer.precision),  # what Lightning ran (16-mixed on a CPU is bf16-mixed)
    }
    if not selection.get("checkpoint"):
        message = (
            "no epoch was validated, so no checkpoint was selected: the test used the last weights "
            "(validation is off, or max_epochs < check_val_every_n_epoch)"
        )
        warnings.warn(message, stacklevel=2)
        report["warnings"] = [*report.get("warnings", []), message]
    if cfg.evaluation.downstream:
        from fairdml.evaluate import downstream_for_datamodule

        with stage(DOWNSTREAM):
            report["downstream"] = downstream_for_datamodule(cfg, datamodule, module.test_embeddings)
    with stage(REPORT):
        save_report(report, RunPaths(out_dir).report)
    gathered = module.test_embeddings
    names = np.array(datamodule.group_names, dtype=object)
    with stage(EXPORT):
        save_embeddings_npz(
            RunPaths(out_dir).embeddings, gathered["embeddings"].numpy(), gathered["labels"].numpy(),
            names[gathered["groups"].numpy()].astype(str), datamodule.group_attribute,
        )  # fmt: skip
        save_embedding_model(module.model, RunPaths(out_dir).model, extra={"experiment": cfg.experiment})
    return report
