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

from fairdml.group_names import marginal_groups
from fairdml.metrics.spec import metric_specs, report_log_keys, summary_higher_is_better

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
        close = difflib.get_close_matches(monitor, valid_keys, n=3, cutoff=0.6)
        hint = f" Closest: {', '.join(close)}." if close else ""
        examples = "val/recall@1, val/recall@1/worst (mode max), val/recall@1/gap (mode min), train/loss"
        raise ValueError(
            f"checkpoint.monitor={monitor!r} is not a logged key.{hint} Valid keys are val/<metric>, "
            f"val/<metric>/group=<group>, val/<metric>/gap|ratio|worst and train/loss, e.g. {examples}."
        )
    higher_is_better = summary_higher_is_better(monitor)
    if higher_is_better is False and mode == "max":
        warnings.warn(
            f"checkpoint.monitor={monitor} is lower-is-better but checkpoint.mode=max", stacklevel=2
        )
    if higher_is_better is True and mode == "min":
        warnings.warn(
            f"checkpoint.monitor={monitor} is higher-is-better but checkpoint.mode=min", stacklevel=2
        )


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
        ModelCheckpoint(
            dirpath=folder, filename="best-{epoch:03d}", monitor=checkpoint_cfg["monitor"],
            mode=checkpoint_cfg["mode"], save_last=False, save_top_k=checkpoint_cfg["save_top_k"],
            auto_insert_metric_name=False, enable_version_counter=False,
        )  # fmt: skip
    ]
    if checkpoint_cfg["save_last"]:
        callbacks.append(
            ModelCheckpoint(
                dirpath=folder, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                enable_version_counter=False,
            )  # fmt: skip
        )
    return callbacks
