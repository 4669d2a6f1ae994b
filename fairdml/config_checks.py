"""Value checks of a composed training config, run before any work.

The dataclass schema in `config.py` catches wrong keys and types; this catches values of the right type
that mean nothing (a negative learning rate, zero epochs, a zero-sized image), which would otherwise train
for minutes and then crash, or worse, write a report of a model that was never trained. Every problem is
named by its key, its value and the valid range, all at once. Callbacks (`callbacks.<name>`) are checked
by building them: each constructor validates its own arguments.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fairdml.models.optimizers import OPTIMIZERS, SCHEDULES
from fairdml.models.precision import SUPPORTED_PRECISIONS
from fairdml.numbers import finite_number


@dataclass(frozen=True)
class Rule:
    key: str
    valid: Callable[[Any], bool]
    expected: str  # the valid range, as the error says it


def _number(value: Any) -> bool:
    return finite_number(value) is not None


def at_least(low: float) -> Callable[[Any], bool]:
    return lambda v: _number(v) and v >= low


def above(low: float) -> Callable[[Any], bool]:
    return lambda v: _number(v) and v > low


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return _number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return check


def one_of(*choices: Any) -> Callable[[Any], bool]:
    return lambda v: v in choices


def either(names: Any) -> str:
    """The valid names as the error says them: "a, b or c"."""
    names = [str(name) for name in names]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _limit_batches(value: Any) -> bool:
    """Lightning's limit_*_batches: None, a share in [0, 1] (float) or a whole number of batches."""
    if value is None:
        return True
    if isinstance(value, float):
        return 0.0 <= value <= 1.0
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


RULES: tuple[Rule, ...] = (
    Rule("seed", between(0, 2**32 - 1), "a whole number in [0, 2**32 - 1] (NumPy's seed range)"),
    Rule("nan_policy", one_of("error", "skip"), "error or skip"),
    Rule("nonfinite_check_every", at_least(1), ">= 1 (training steps between reads of the non-finite flag)"),
    Rule("data.minority_share", optional(between(0, 1, low_open=True)), "null or a share in (0, 1]"),
    Rule("data.imbalance_by", one_of("samples", "classes"), "samples or classes"),
    Rule("data.class_split", one_of("random", "ordered"), "random or ordered (label order, CUB's standard protocol)"),
    Rule("data.image_size", at_least(1), ">= 1 (pixels)"),
    Rule("data.batch_size", at_least(1), ">= 1"),
    Rule("data.samples_per_class", at_least(1), ">= 1"),
    Rule("data.eval_batch_size", at_least(1), ">= 1"),
    Rule("data.num_workers", at_least(0), ">= 0"),
    Rule("model.embedding_dim", at_least(1), ">= 1"),
    Rule("optim.name", one_of(*OPTIMIZERS), either(OPTIMIZERS)),
    Rule("optim.lr", above(0), "> 0"),
    Rule("optim.backbone_lr", at_least(0), ">= 0 (0 freezes the backbone)"),
    Rule("optim.loss_lr", at_least(0), ">= 0"),
    Rule("optim.weight_decay", at_least(0), ">= 0"),
    Rule("optim.momentum", between(0, 1, high_open=True), "in [0, 1)"),
    Rule("optim.scheduler", one_of(*SCHEDULES), either(SCHEDULES)),
    Rule("optim.warmup_epochs", at_least(0), ">= 0"),
    Rule("optim.step_size", at_least(1), ">= 1"),
    Rule("optim.gamma", between(0, 1, low_open=True), "in (0, 1]"),
    Rule("trainer.max_epochs", at_least(1), ">= 1 (0 would write an untrained model; -1, endless, has no end)"),
    Rule("trainer.check_val_every_n_epoch", at_least(1), ">= 1"),
    Rule("trainer.log_every_n_steps", at_least(1), ">= 1"),
    Rule("trainer.limit_train_batches", _limit_batches, "null, a share in [0.0, 1.0] or a whole number >= 0"),
    Rule("trainer.limit_val_batches", _limit_batches, "null, a share in [0.0, 1.0] or a whole number >= 0"),
    Rule("trainer.gradient_clip_val", optional(above(0)), "null or > 0"),
    Rule("trainer.num_nodes", at_least(1), ">= 1"),
    Rule(
        "trainer.precision", lambda v: str(v) in SUPPORTED_PRECISIONS,
        f"one of {SUPPORTED_PRECISIONS} (bf16-mixed on a GPU; half-precision weights, '-true', are not supported)",
    ),
    Rule("checkpoint.mode", one_of("min", "max"), "min or max"),
    Rule("checkpoint.save_top_k", lambda v: v == -1 or at_least(1)(v), ">= 1, or -1 for all (0 keeps no best)"),
    Rule("evaluation.ks", lambda v: bool(v) and all(at_least(1)(k) for k in v), "a non-empty list of k >= 1"),
    Rule("evaluation.min_group_size", at_least(1), ">= 1"),
    Rule("evaluation.bootstrap_resamples", lambda v: v == 0 or at_least(2)(v), "0 (no intervals) or >= 2"),
    Rule("evaluation.downstream_test_share", between(0, 1, low_open=True, high_open=True), "in (0, 1)"),
    Rule(
        "logger.wandb.mode", optional(one_of("offline", "online", "disabled")),
        "offline, online or disabled (null: $WANDB_MODE, else offline)",
    ),
    Rule("logger.wandb.init_timeout", above(0), "> 0 (seconds)"),
)


def config_problems(cfg: DictConfig) -> list[str]:
    """One line per value outside its valid range (empty when the config is sound)."""
    problems = []
    for rule in RULES:
        value = OmegaConf.select(cfg, rule.key, default=None, throw_on_missing=False)
        if isinstance(value, (DictConfig,)) or OmegaConf.is_list(value):
            value = OmegaConf.to_container(value, resolve=True)
        if not rule.valid(value):
            problems.append(f"{rule.key}={value!r}: must be {rule.expected}")
    data = cfg.data
    sizes_valid = at_least(1)(data.batch_size) and at_least(1)(data.samples_per_class)
    if sizes_valid and data.batch_size % data.samples_per_class:
        problems.append(
            f"data.batch_size={data.batch_size}: must be a multiple of data.samples_per_class="
            f"{data.samples_per_class} (each batch holds batch_size / samples_per_class whole classes)"
        )
    if cfg.model.get("pretrained") and cfg.model.get("pretrained_path") is not None:
        problems.append(
            f"model.pretrained=true and model.pretrained_path={cfg.model.pretrained_path!r}: choose one weight "
            f"source (timm's hub cache or the local file)"
        )
    problems += _component_problems(cfg)
    problems += _callback_problems(cfg)
    problems += _logger_problems(cfg)
    return problems


def _logger_problems(cfg: DictConfig) -> list[str]:
    """Build each extra logger once (nothing is written before its first log), so a missing package or a
    misspelled argument fails now."""
    from fairdml.loggers.create import extra_loggers

    try:
        extra_loggers(cfg.logger.get("extra"), Path(tempfile.gettempdir()) / "fairdml-logger-check")
    except ValueError as error:
        return [str(error)]
    return []


def _callback_problems(cfg: DictConfig) -> list[str]:
    """Build each callback once: its constructor checks its own arguments (the signature is the schema)."""
    from fairdml.callbacks.instantiate import build_callbacks

    return build_callbacks(cfg.callbacks)[1]


def _component_problems(cfg: DictConfig) -> list[str]:
    """Build the loss and miner once, so an unknown `loss.kwargs` key fails now, not at the first step."""
    from fairdml.losses import create_loss, create_miner

    if not at_least(1)(cfg.model.embedding_dim):
        return []
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    problems = []
    try:
        create_loss(loss["name"], 2, int(cfg.model.embedding_dim), **loss["kwargs"])
    except (TypeError, ValueError) as error:
        problems.append(f"loss.name={loss['name']!r} with loss.kwargs={loss['kwargs']}: {error}")
    try:
        create_miner(loss["miner"], **loss["miner_kwargs"])
    except (TypeError, ValueError) as error:
        problems.append(f"loss.miner={loss['miner']!r} with loss.miner_kwargs={loss['miner_kwargs']}: {error}")
    return problems


def check_config(cfg: DictConfig) -> None:
    """Raise one ValueError, one line, listing every invalid value (key, value, valid range)."""
    problems = config_problems(cfg)
    if problems:
        raise ValueError(f"invalid configuration: {'; '.join(problems)}")
