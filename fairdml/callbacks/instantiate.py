"""Callbacks from the config's `callbacks:` group: each entry names its class in `_target_`, the rest are its
keyword arguments (`fairdml.utils.targets.build_target` checks them against the class's signature)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from fairdml.mitigations.base import Mitigation
from fairdml.utils.targets import build_target


def build_callbacks(entries: Mapping[str, Any] | DictConfig | None) -> tuple[list[Callback], list[str]]:
    """The callbacks of a `callbacks:` block and one problem line per entry that cannot be built.

    An entry set to null is skipped, so `callbacks.parade=null` removes a callback an experiment added.
    """
    if isinstance(entries, DictConfig):
        entries = OmegaConf.to_container(entries, resolve=True)
    built: list[Callback] = []
    problems: list[str] = []
    names: dict[str, str] = {}
    for key, entry in (entries or {}).items():
        if entry is None:
            continue
        try:
            callback = _build_one(key, entry)
        except ValueError as error:
            problems.append(str(error))
            continue
        if isinstance(callback, Mitigation):
            if callback.name in names:
                first = names[callback.name]
                problems.append(f"callbacks.{key}: a second '{callback.name}' mitigation (first: callbacks.{first})")
                continue
            names[callback.name] = key
        built.append(callback)
    return built, problems


def instantiate_callbacks(entries: Mapping[str, Any] | DictConfig | None) -> list[Callback]:
    """`build_callbacks`, raising one ValueError that lists every problem."""
    callbacks, problems = build_callbacks(entries)
    if problems:
        raise ValueError(f"invalid callbacks: {'; '.join(problems)}")
    return callbacks


def _build_one(key: str, entry: Any) -> Callback:
    if not isinstance(entry, dict) or "_target_" not in entry:
        raise ValueError(
            f"callbacks.{key}: no _target_ (the callback's class): add the callback first, e.g. `callbacks={key}`"
        )
    return build_target(f"callbacks.{key}", entry, Callback, "a Lightning Callback")
