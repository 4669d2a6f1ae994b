"""Keyword settings of the Python API (`DMLModule(backbone=..., lr=...)`, `DMLDataModule(batch_size=...)`).

The keywords override the composed default config (`compose_config([])`, what `fairdml train` starts from), so
a keyword-built object holds the same full config as a run of the same settings, and its checkpoint is an
ordinary one. A wrong keyword or value fails as a config does: one line, naming the key and, for an unknown
keyword, the closest valid one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from fairdml.config import TrainConfig, compose_config
from fairdml.config_rules import value_problems
from fairdml.utils.config_files import config_dir


@dataclass(frozen=True)
class Keywords:
    """The keyword settings one class accepts, as overrides of the training config.

    `keys` maps each keyword to its dotted config key. A keyword in `presets` names an option of a config group
    (`loss="triplet"` is `loss=triplet`: configs/loss/triplet.yaml sets the whole block); a name with no such
    file keeps the schema's defaults for the rest of its block. A mapping value merges into the config's
    mapping when its keyword is in `merged` (keyword arguments, as `loss.kwargs.margin=0.1` would), else
    replaces it. A keyword in `resets` clears those keys when it changes its value (another miner does not
    take the old miner's arguments). `checks`: the owner's own checks of the config, beside the value rules
    (`fairdml.config_rules`) every keyword config gets; e.g. DMLModule's builds its loss and miner.
    """

    owner: str  # the class, as errors name it
    keys: Mapping[str, str]
    presets: Mapping[str, str] = field(default_factory=dict)  # keyword -> config group
    merged: frozenset[str] = frozenset()
    resets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    checks: tuple[Callable[[DictConfig], list[str]], ...] = ()

    def check_names(self, settings: Mapping[str, Any]) -> None:
        """An unknown keyword fails here, before any composition, naming the closest valid one."""
        for name in settings:
            if name not in self.keys:
                close = difflib.get_close_matches(name, list(self.keys), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise ValueError(
                    f"bad configuration: {self.owner} has no keyword '{name}'. Valid keywords: {list(self.keys)}.{hint}"
                )


def keyword_config(keywords: Keywords, settings: Mapping[str, Any]) -> DictConfig:
    """The default training config with `settings` applied, its values checked (`value_problems`) with the
    owner's `checks`: what `fairdml train` checks of the keys the keywords set.

    Raises:
        ValueError: one line: an unknown keyword (with the closest valid one), a value of the wrong type, or
            every value outside its valid range, named by keyword.
    """
    keywords.check_names(settings)
    presets = {name: group for name, group in keywords.presets.items() if name in settings}
    chosen = [name for name, group in presets.items() if _is_option(group, settings[name])]
    cfg = compose_config([f"{presets[name]}={settings[name]}" for name in chosen])
    schema = OmegaConf.structured(TrainConfig)
    with open_dict(cfg):  # the keywords name known keys; open only so that keyword-argument dicts can grow
        for name in presets.keys() - set(chosen):
            cfg[presets[name]] = schema[presets[name]]  # no preset of that name: the schema's defaults
        for name in keywords.keys:  # in the keys' order, not the call's: a miner's reset precedes its kwargs
            if name in settings:
                _apply(cfg, schema, keywords, name, settings[name])
    problems = value_problems(cfg) + [problem for check in keywords.checks for problem in check(cfg)]
    if problems:
        by_key = {key: name for name, key in keywords.keys.items()}
        problems = [_keyword_problem(problem, by_key) for problem in problems]
        raise ValueError(f"invalid configuration: {'; '.join(problems)}")
    return cfg


def _is_option(group: str, name: Any) -> bool:
    """Whether the config folder has `<group>/<name>.yaml` (a name Hydra's override grammar takes as is)."""
    return isinstance(name, str) and name.isidentifier() and (config_dir() / group / f"{name}.yaml").is_file()


def _apply(cfg: DictConfig, schema: DictConfig, keywords: Keywords, name: str, value: Any) -> None:
    key = keywords.keys[name]
    if name in keywords.resets and OmegaConf.select(cfg, key) != value:
        for other in keywords.resets[name]:
            OmegaConf.update(cfg, other, OmegaConf.select(schema, other), merge=False)
    merge = name in keywords.merged
    if merge and not isinstance(value, Mapping):
        raise ValueError(f"bad configuration: {name}={value!r}: must be a dict (keyword arguments by name)")
    try:
        OmegaConf.update(cfg, key, value, merge=merge)
    except OmegaConfBaseException as error:  # a value of the wrong type for the schema
        reason = str(error).splitlines()[0]
        raise ValueError(f"bad configuration: {name}={value!r} ({key}): {reason}") from None


def _keyword_problem(problem: str, by_key: Mapping[str, str]) -> str:
    """`model.embedding_dim=0: must be >= 1` as `embedding_dim=0: must be >= 1`: the name the caller used."""
    key, sep, rest = problem.partition("=")
    return f"{by_key[key]}={rest}" if sep and key in by_key else problem
