"""Model selection by fairness: which logged key the checkpoint callback may monitor, checked before fit.

Lightning's `ModelCheckpoint` only finds out that `monitor` names no logged metric at the end of the first
validation epoch, after minutes of training, and then raises. The validation keys are known from the
config (metric names, k values) and the data (group names), so a misspelled key fails here at once,
naming the closest valid key. Keys follow `fairdml.metrics.spec.report_log_keys`, as `flatten_report`'s do.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

from fairdml.metrics.spec import legacy_log_key, metric_specs, report_log_keys, summary_higher_is_better
from fairdml.utils.group_names import marginal_groups

_TRAIN_LOSS = re.compile(r"^train/loss(_[A-Za-z0-9_]+)?$")  # train/loss, train/loss_<term>


def validation_keys(ks: Sequence[int], group_names: Sequence[str], leakage: bool) -> list[str]:
    """Every scalar key one validation logs (when each value is finite), in `flatten_report`'s order."""
    specs = metric_specs(ks)
    overall = [spec.name for spec in specs if spec.name != "attribute_leakage" or leakage]
    per_group = [spec.name for spec in specs if spec.per_group]
    marginals = {a: list(groups) for a, groups in (marginal_groups(group_names) or {}).items()}
    return [key.key for key in report_log_keys("val", overall, group_names, per_group, marginals)]


def check_monitor(monitor: str, mode: str, valid_keys: Sequence[str]) -> None:
    """Raise a ValueError naming the closest valid key when `monitor` is not one; warn on an odd mode."""
    if mode not in ("min", "max"):
        raise ValueError(f"checkpoint.mode must be 'min' or 'max', got {mode!r}")
    if monitor not in valid_keys and not _TRAIN_LOSS.match(monitor):
        renamed = legacy_log_key(monitor)
        if renamed is not None and renamed in valid_keys:
            raise ValueError(
                f"checkpoint.monitor={monitor!r} is fairdml 0.1's key style; the logged key is now {renamed!r} "
                "(keys every Lightning logger accepts: docs/tracking.md)"
            )
        close = difflib.get_close_matches(monitor, valid_keys, n=3, cutoff=0.6)
        hint = f" Closest: {', '.join(close)}." if close else ""
        examples = "val/recall_at_1, val/recall_at_1/worst (mode max), val/recall_at_1/gap (mode min), train/loss"
        raise ValueError(
            f"checkpoint.monitor={monitor!r} is not a logged key.{hint} Valid keys are val/<metric>, "
            f"val_groups/<metric>/<group>, val/<metric>/gap|ratio|worst and train/loss, e.g. {examples}."
        )
    higher_is_better = summary_higher_is_better(monitor)
    if higher_is_better is False and mode == "max":
        warnings.warn(f"checkpoint.monitor={monitor} is lower-is-better but checkpoint.mode=max", stacklevel=2)
    if higher_is_better is True and mode == "min":
        warnings.warn(f"checkpoint.monitor={monitor} is higher-is-better but checkpoint.mode=min", stacklevel=2)


class RunCheckpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint`, whose saved state follows its run folder.

    Lightning keeps absolute paths in a checkpoint and, when the folder differs on restore (the run was moved or
    copied), forgets its best checkpoints and score: the resumed run would then select a worse epoch. Paths
    under the saved folder are moved under this one instead; train.py has checked that the checkpoint is this
    run's own before anything is restored.
    """

    @property
    def state_key(self) -> str:
        # Lightning names the state by the class: keep ModelCheckpoint's key, so earlier checkpoints still restore
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and Path(saved) != Path(self.dirpath):
            state_dict = rebase_checkpoint_state(state_dict, Path(saved), Path(self.dirpath))
        super().load_state_dict(state_dict)


def rebase_checkpoint_state(state: dict, old: Path, new: Path) -> dict:
    """`ModelCheckpoint` state with every path under `old` moved under `new` (the folder is flat)."""

    def moved(path: str) -> str:
        return str(new / Path(path).name) if path and Path(path).parent == old else path

    rebased = dict(state, dirpath=str(new))
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in rebased:
            rebased[key] = moved(rebased[key])
    rebased["best_k_models"] = {moved(path): score for path, score in state.get("best_k_models", {}).items()}
    return rebased


def build_checkpoint(
    checkpoint_cfg: dict, evaluation_cfg: dict, group_names: Sequence[str], run_dir: Path
) -> list[ModelCheckpoint]:
    """Lightning's `ModelCheckpoint` keeping the best by `checkpoint.monitor` (after checking the key), and
    with `checkpoint.save_last` a second one writing `last.ckpt` at every validation.

    The second exists because Lightning (2.6) refreshes its own `save_last` file only when a best
    checkpoint is saved in the same step, so after the monitored figure stops improving `last.ckpt` goes
    stale: a resume would replay every epoch since, and an export of "last" would export old weights. The
    best-checkpoint callback comes first, so `trainer.checkpoint_callback` is the one that selects.
    """
    valid = validation_keys(evaluation_cfg["ks"], group_names, evaluation_cfg["val_leakage"])
    check_monitor(checkpoint_cfg["monitor"], checkpoint_cfg["mode"], valid)
    folder = run_dir / "checkpoints"
    callbacks = [
        RunCheckpoint(
            dirpath=folder,
            filename="best-{epoch:03d}",
            monitor=checkpoint_cfg["monitor"],
            mode=checkpoint_cfg["mode"],
            save_last=False,
            save_top_k=checkpoint_cfg["save_top_k"],
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )  # fmt: skip
    ]
    if checkpoint_cfg["save_last"]:
        callbacks.append(
            RunCheckpoint(
                dirpath=folder,
                filename="last",
                monitor=None,
                save_top_k=1,
                every_n_epochs=1,
                enable_version_counter=False,
            )  # fmt: skip
        )
    return callbacks
