"""The valid range of each training config value, checked before any work, all problems at once.

The dataclass schema in `config.py` catches wrong keys and types; these rules catch values of the right type
that mean nothing (a negative learning rate, zero epochs, a zero-sized image), which would otherwise train for
minutes and then crash, or worse, write a report of a model that was never trained. Each problem names its
key, its value and the valid range.

Only what the config alone decides is here, so the data and model layers can check a keyword-built config
(`config_keywords.py`): the names of optimisers, schedules and precisions come from the models' own tables
(`fairdml.models.config_rules`), and the whole check before a run, which also builds the loss, the callbacks
and the loggers, is `fairdml.config_checks`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fairdml.utils.rules import Rule, above, at_least, between, one_of, optional


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
    Rule("optim.lr", above(0), "> 0"),
    Rule("optim.backbone_lr", at_least(0), ">= 0 (0 freezes the backbone)"),
    Rule("optim.loss_lr", at_least(0), ">= 0"),
    Rule("optim.weight_decay", at_least(0), ">= 0"),
    Rule("optim.momentum", between(0, 1, high_open=True), "in [0, 1)"),
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
    Rule("checkpoint.mode", one_of("min", "max"), "min or max"),
    Rule("checkpoint.save_top_k", lambda v: v == -1 or at_least(1)(v), ">= 1, or -1 for all (0 keeps no best)"),
    Rule("evaluation.ks", lambda v: bool(v) and all(at_least(1)(k) for k in v), "a non-empty list of k >= 1"),
    Rule("evaluation.min_group_size", at_least(1), ">= 1"),
    Rule("evaluation.bootstrap_resamples", lambda v: v == 0 or at_least(2)(v), "0 (no intervals) or >= 2"),
    Rule("evaluation.downstream_test_share", between(0, 1, low_open=True, high_open=True), "in (0, 1)"),
    Rule(
        "logger.wandb.mode",
        optional(one_of("offline", "online", "disabled")),
        "offline, online or disabled (null: $WANDB_MODE, else offline)",
    ),
    Rule("logger.wandb.init_timeout", above(0), "> 0 (seconds)"),
)


def rule_problems(cfg: DictConfig, rules: Iterable[Rule]) -> list[str]:
    """One line per rule whose value in `cfg` is outside its range ("key=value: must be <range>")."""
    problems = []
    for rule in rules:
        value = OmegaConf.select(cfg, rule.key, default=None, throw_on_missing=False)
        if isinstance(value, DictConfig) or OmegaConf.is_list(value):
            value = OmegaConf.to_container(value, resolve=True)
        if not rule.valid(value):
            problems.append(f"{rule.key}={value!r}: must be {rule.expected}")
    return problems


def value_problems(cfg: DictConfig) -> list[str]:
    """One line per value outside its valid range, as far as the config alone decides (empty when sound).

    Example:
        >>> from fairdml.config import compose_config
        >>> value_problems(compose_config(["optim.lr=-1", "data.batch_size=0"]))
        ['data.batch_size=0: must be >= 1', 'optim.lr=-1.0: must be > 0']
    """
    problems = rule_problems(cfg, RULES)
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
    return problems
