"""Callbacks from the config's `callbacks:` group: each entry names its class in `_target_`, the rest are its
keyword arguments (as lightning-hydra-template does). The class's own signature is the schema: an unknown
key is reported with the valid ones before any work, and the constructor's own checks run at once.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from fairdml.mitigations.base import Mitigation, plain_values


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
    where = f"callbacks.{key}"
    if not isinstance(entry, dict) or "_target_" not in entry:
        raise ValueError(
            f"{where}: no _target_ (the callback's class): add the callback first, e.g. `callbacks={key}`"
        )
    try:
        cls = get_class(entry["_target_"])
    except (ImportError, ValueError, InstantiationException) as error:
        raise ValueError(f"{where}._target_={entry['_target_']!r} cannot be imported: {_cause(error)}") from None
    _check_keys(where, cls, entry)
    try:
        callback = instantiate(entry, _convert_="all")
    except InstantiationException as error:
        raise ValueError(f"{where}: {_cause(error)}") from None
    if not isinstance(callback, Callback):
        raise ValueError(f"{where}._target_={entry['_target_']!r} is not a Lightning Callback")
    return callback


def signature_defaults(entries: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each entry's constructor defaults (`{name: {argument: default}}`), for entries whose class imports:
    a run made before an argument existed reads as having had its default."""
    defaults: dict[str, dict[str, Any]] = {}
    for key, entry in entries.items():
        try:
            cls = get_class(entry["_target_"])
        except (ImportError, ValueError, InstantiationException, KeyError, TypeError):
            continue
        parameters = inspect.signature(cls.__init__).parameters.values()
        defaults[key] = {
            p.name: plain_values(p.default)
            for p in parameters
            if p.name != "self" and p.default is not inspect.Parameter.empty
        }
    return defaults


def _check_keys(where: str, cls: type, entry: dict) -> None:
    """Unknown keys, named with the valid ones and the closest match (the constructor's signature)."""
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [name for name in parameters if name != "self"]
    unknown = [key for key in entry if not key.startswith("_") and key not in valid]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"{where}: unknown key(s) {unknown}{hint}; valid keys of {cls.__name__}: {valid}")


def _cause(error: BaseException) -> str:
    """The constructor's own message, not Hydra's wrapper."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
