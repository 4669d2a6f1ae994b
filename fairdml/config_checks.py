"""The whole check of a composed training config, run before any work: every problem named at once.

It gathers the config's value rules (`config_rules.py`), the model's names and a loss and miner that build
(`models/config_rules.py`), and builds what the config names above the model: each callback
(`callbacks.<name>`, whose constructor validates its own arguments) and each extra logger. Because it builds
callbacks and loggers, it sits above them; the layers below check with `config_rules` and
`models/config_rules`, and the rule vocabulary (`Rule`, `at_least`, ...) is `fairdml.utils.rules`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from omegaconf import DictConfig

from fairdml.callbacks.instantiate import build_callbacks
from fairdml.config_rules import value_problems
from fairdml.loggers.create import extra_loggers
from fairdml.models.config_rules import model_problems


def config_problems(cfg: DictConfig) -> list[str]:
    """One line per problem (empty when the config is sound): values, names, loss, callbacks, loggers."""
    return value_problems(cfg) + model_problems(cfg) + _callback_problems(cfg) + _logger_problems(cfg)


def _logger_problems(cfg: DictConfig) -> list[str]:
    """Build each extra logger once (nothing is written before its first log), so a missing package or a
    misspelled argument fails now."""
    try:
        extra_loggers(cfg.logger.get("extra"), Path(tempfile.gettempdir()) / "fairdml-logger-check")
    except ValueError as error:
        return [str(error)]
    return []


def _callback_problems(cfg: DictConfig) -> list[str]:
    """Build each callback once: its constructor checks its own arguments (the signature is the schema)."""
    return build_callbacks(cfg.callbacks)[1]


def check_config(cfg: DictConfig) -> None:
    """Raise one ValueError, one line, listing every invalid value (key, value, valid range)."""
    problems = config_problems(cfg)
    if problems:
        raise ValueError(f"invalid configuration: {'; '.join(problems)}")
