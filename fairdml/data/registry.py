"""Name → dataset factory, so a config string picks a dataset (like timm's model registry).

An in-tree reader is one module `fairdml/data/<name>.py` whose class carries `@register_dataset("<name>")`,
plus `configs/data/<name>.yaml`: the registry finds the module by listing the package, so no list of readers
is kept anywhere. A reader outside fairdml needs no fairdml file: name it `data.name=package.module:factory`,
or call `register_dataset` in user code before the data module is set up.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

from fairdml.data.base import DMLDataset

DATASETS: dict[str, Callable[..., DMLDataset]] = {}

# fairdml.data's own machinery, not readers. Discovery skips them so that looking a name up does not load
# Lightning (datamodule); a module missing here is only imported needlessly, never registered wrongly.
FRAMEWORK_MODULES = frozenset({"base", "datamodule", "imageio", "registry", "samplers", "splits"})

# Readers whose import failed for want of a third-party package: module → error, raised when asked for.
UNAVAILABLE: dict[str, ModuleNotFoundError] = {}
_discovered: set[str] = set()

PATH_FORM = "'package.module:factory'"


def register_dataset(name: str) -> Callable:
    """Class decorator: make a DMLDataset (or a function that returns one) available as `data.name=<name>`.

    Args:
        name: the name configs and `DMLDataModule(name=...)` select it by; its keyword arguments are
            `data.options`.

    Raises:
        ValueError: for a name with ':' (which marks the `package.module:factory` form) or one registered twice.

    Example:
        Four 8×8 grey squares per class, odd classes "dark" (docs/extending.md, "A dataset reader", has a whole
        reader); the data module builds it by name:

        >>> import numpy as np
        >>> from PIL import Image
        >>> @register_dataset("grey_squares")
        ... class GreySquares(DMLDataset):
        ...     attribute_names, attribute_values = ("tone",), (("light", "dark"),)
        ...     def __init__(self, num_classes: int = 20):
        ...         self.labels = np.arange(num_classes).repeat(4)
        ...         self.attributes = (self.labels[:, None] % 2).astype(np.int64)
        ...     def load_image(self, index: int) -> Image.Image:
        ...         return Image.new("RGB", (8, 8), (250 - 10 * int(self.labels[index]),) * 3)
        >>> from fairdml import DMLDataModule
        >>> datamodule = DMLDataModule(name="grey_squares", options={"num_classes": 20}, sensitive_attribute="tone")
        >>> datamodule.setup()
        >>> datamodule.group_names, len(datamodule.views["test"])
        (['light', 'dark'], 24)
        >>> _ = DATASETS.pop("grey_squares")  # the registry is per process
    """
    if ":" in name:
        raise ValueError(f"dataset name {name!r} may not contain ':', which marks the {PATH_FORM} form")

    def wrap(factory: Callable[..., DMLDataset]) -> Callable[..., DMLDataset]:
        if name in DATASETS:
            raise ValueError(
                f"dataset {name!r} is registered twice: by {_qualified(DATASETS[name])} and {_qualified(factory)}"
            )
        DATASETS[name] = factory
        return factory

    return wrap


def _qualified(factory: Callable) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def discover_datasets(package: str = "fairdml.data") -> None:
    """Import each reader module of `package` once, so that its `@register_dataset` runs.

    A reader that needs a package that is not installed is set aside (see `UNAVAILABLE`) and fails only
    when asked for; any other import error of a reader is raised here, naming the reader's file.
    """
    if package in _discovered:
        return
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if module.ispkg or module.name.startswith("_") or module.name in FRAMEWORK_MODULES:
            continue
        qualified = f"{package}.{module.name}"
        try:
            importlib.import_module(qualified)
        except ModuleNotFoundError as error:
            if error.name is None or error.name.partition(".")[0] == "fairdml":
                raise  # fairdml's own code is never optional
            UNAVAILABLE[qualified] = error
    _discovered.add(package)


def dataset_factory(name: str) -> Callable[..., DMLDataset]:
    """The factory for a registered name or a `package.module:factory` path."""
    if ":" in name:
        return _import_factory(name)
    discover_datasets()
    if name in DATASETS:
        return DATASETS[name]
    missing = UNAVAILABLE.get(f"fairdml.data.{name}")
    if missing is not None:
        raise ModuleNotFoundError(
            f"dataset {name!r} needs the package {missing.name!r}, which is not installed; install it to use "
            f"this reader",
            name=missing.name,
        ) from missing
    unavailable = sorted(m.removeprefix("fairdml.data.") for m in UNAVAILABLE if m.startswith("fairdml.data."))
    hint = f" (not importable, a package is missing: {unavailable})" if unavailable else ""
    raise KeyError(
        f"unknown dataset {name!r}; registered datasets: {sorted(DATASETS)}{hint}; "
        f"or name a reader outside fairdml as {PATH_FORM}"
    )


def _import_factory(path: str) -> Callable[..., DMLDataset]:
    """Resolve `package.module:factory` (the factory may be dotted, e.g. `Class.build`)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"dataset {path!r}: expected a registered name or {PATH_FORM}")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or not f"{module_name}.".startswith(f"{error.name}."):
            raise  # the module exists but one of its own imports is missing: that error says which
        raise ModuleNotFoundError(
            f"dataset {path!r}: no module {module_name!r}; install its package or put its folder on PYTHONPATH",
            name=error.name,
        ) from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise AttributeError(f"dataset {path!r}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"dataset {path!r} is a {type(target).__name__}, not a class or function")
    return target


def create_dataset(name: str, **kwargs: Any) -> DMLDataset:
    """Build a registered dataset; unknown names and unknown options fail naming the valid ones."""
    factory = dataset_factory(name)
    parameters = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(kwargs) - set(parameters))
        if unknown:
            valid = [p for p in parameters if p != "self"]
            raise TypeError(f"dataset {name!r} got unknown option(s) {unknown}; valid options: {valid}")
    return factory(**kwargs)
