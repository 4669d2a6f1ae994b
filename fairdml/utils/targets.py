"""Objects named by `_target_` in a config block (callbacks, extra loggers), as lightning-hydra-template does.

The class's own signature is the schema: an unknown key is reported with the valid ones and the closest
match before any work, and the constructor's own checks run at once, each as one line naming the entry.
`signature_defaults` reads the same signatures back: the defaults of a finished run's entries.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate

from fairdml.utils.nested import plain_values


def build_target(where: str, entry: Any, base: type, what: str, fill: dict[str, Any] | None = None) -> Any:
    """The object `entry` (`{_target_: ..., **kwargs}`) describes, an instance of `base` (`what`, in errors), or
    a ValueError naming `where`. `fill`: arguments given when the entry does not set them and the class takes
    them."""
    if not isinstance(entry, dict) or "_target_" not in entry:
        raise ValueError(f"{where}: no _target_ (the class to build), got {entry!r}")
    try:
        cls = get_class(entry["_target_"])
    except (ImportError, ValueError, InstantiationException) as error:
        raise ValueError(f"{where}._target_={entry['_target_']!r} cannot be imported: {_cause(error)}") from None
    _check_keys(where, cls, entry)
    parameters = inspect.signature(cls.__init__).parameters
    entry = {**{k: v for k, v in (fill or {}).items() if k in parameters and k not in entry}, **entry}
    try:
        built = instantiate(entry, _convert_="all")
    except InstantiationException as error:
        raise ValueError(f"{where}: {_cause(error)}") from None
    if not isinstance(built, base):
        raise ValueError(f"{where}._target_={entry['_target_']!r} is not {what}")
    return built


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
