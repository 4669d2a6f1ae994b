"""`optim.name` → optimiser and `optim.scheduler` → learning-rate schedule: one table each.

`DMLModule.configure_optimizers` builds from them and the config check (`fairdml.models.config_rules`) takes
its valid names from them, so a new optimiser or schedule is one entry here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

OptimizerBuilder = Callable[[list[dict], dict], torch.optim.Optimizer]  # (parameter groups, optim config)
LrFactor = Callable[[int], float]  # optimiser step -> factor of each group's learning rate
# (optim config, total steps, warmup steps, steps per epoch) -> the factor after the warmup
ScheduleBuilder = Callable[[dict, int, int, int], LrFactor]

OPTIMIZERS: dict[str, OptimizerBuilder] = {
    "adamw": lambda groups, cfg: torch.optim.AdamW(groups, weight_decay=cfg["weight_decay"]),
    "adam": lambda groups, cfg: torch.optim.Adam(groups, weight_decay=cfg["weight_decay"]),
    "sgd": lambda groups, cfg: torch.optim.SGD(groups, momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]),
}


def _cosine(optim_cfg: dict, total: int, warmup: int, steps_per_epoch: int) -> LrFactor:
    """Half a cosine from 1 to 0 over the steps after the warmup."""
    return lambda step: 0.5 * (1 + math.cos(math.pi * min((step - warmup) / max(total - warmup, 1), 1.0)))


def _step(optim_cfg: dict, total: int, warmup: int, steps_per_epoch: int) -> LrFactor:
    """× gamma every `step_size` epochs."""
    return lambda step: optim_cfg["gamma"] ** ((step // steps_per_epoch) // optim_cfg["step_size"])


# "none": a constant learning rate, no scheduler at all
SCHEDULES: dict[str, ScheduleBuilder | None] = {"cosine": _cosine, "step": _step, "none": None}


def create_optimizer(optim_cfg: dict, groups: list[dict]) -> torch.optim.Optimizer:
    """The optimiser `optim.name` names, over `groups` (each with its own "lr").

    Args:
        optim_cfg: the `optim` config (name, weight_decay, momentum, ...).
        groups: torch parameter groups.

    Example:
        >>> layer = torch.nn.Linear(2, 2)
        >>> cfg = {"name": "sgd", "weight_decay": 0.0, "momentum": 0.9}
        >>> type(create_optimizer(cfg, [{"params": layer.parameters(), "lr": 0.1}])).__name__
        'SGD'
    """
    name = optim_cfg["name"]
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optim.name {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](groups, optim_cfg)


def schedule_of(optim_cfg: dict) -> ScheduleBuilder | None:
    """The schedule `optim.scheduler` names; None for "none" (a constant learning rate, no scheduler).

    Args:
        optim_cfg: the `optim` config.

    Example:
        >>> schedule_of({"scheduler": "none"}) is None, schedule_of({"scheduler": "cosine"}) is SCHEDULES["cosine"]
        (True, True)
    """
    kind = optim_cfg["scheduler"]
    if kind not in SCHEDULES:
        raise ValueError(f"unknown optim.scheduler {kind!r}; valid: {', '.join(SCHEDULES)}")
    return SCHEDULES[kind]


def with_warmup(decay: LrFactor, warmup: int) -> LrFactor:
    """A linear warmup from 1/warmup to 1 over the first `warmup` steps, then `decay`.

    Args:
        decay: the schedule's factor (what `SCHEDULES[name](...)` returns); warmup: warmup steps (0: none).

    Example:
        >>> factor = with_warmup(_cosine({}, total=10, warmup=2, steps_per_epoch=5), warmup=2)
        >>> [round(factor(step), 3) for step in (0, 1, 2, 6, 10)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """

    def factor(step: int) -> float:
        return (step + 1) / warmup if step < warmup else decay(step)

    return factor
