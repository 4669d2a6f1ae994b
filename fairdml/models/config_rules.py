"""The model's part of the config check: names its own tables decide, and a loss and miner that build.

`optim.name`, `optim.scheduler` and `trainer.precision` are valid when the models' tables have them
(`optimizers.py`, `precision.py`), so a new optimiser is one entry there; the loss and miner are built once,
so an unknown `loss.kwargs` key fails before any work, not at the first step. A keyword-built `DMLModule`
checks these beside the config's own value rules (`fairdml.config_rules`), and so does every run
(`fairdml.config_checks`).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from fairdml.config_rules import rule_problems
from fairdml.losses import create_loss, create_miner
from fairdml.models.optimizers import OPTIMIZERS, SCHEDULES
from fairdml.models.precision import SUPPORTED_PRECISIONS
from fairdml.utils.rules import Rule, at_least, either, one_of

RULES: tuple[Rule, ...] = (
    Rule("optim.name", one_of(*OPTIMIZERS), either(OPTIMIZERS)),
    Rule("optim.scheduler", one_of(*SCHEDULES), either(SCHEDULES)),
    Rule(
        "trainer.precision",
        lambda v: str(v) in SUPPORTED_PRECISIONS,
        f"one of {SUPPORTED_PRECISIONS} (bf16-mixed on a GPU; half-precision weights, '-true', are not supported)",
    ),
)


def model_problems(cfg: DictConfig) -> list[str]:
    """One line per invalid optimiser, schedule or precision name, and per loss or miner that does not build.

    Example:
        >>> from fairdml.config import compose_config
        >>> model_problems(compose_config(["optim.scheduler=linear"]))
        ["optim.scheduler='linear': must be cosine, step or none"]
    """
    return rule_problems(cfg, RULES) + _component_problems(cfg)


def _component_problems(cfg: DictConfig) -> list[str]:
    """Build the loss and miner once, so an unknown `loss.kwargs` key fails now, not at the first step."""
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
