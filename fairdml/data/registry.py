"""Name → dataset factory, so a config string picks a dataset (like timm's model registry)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fairdml.data.base import DMLDataset

DATASETS: dict[str, Callable[..., DMLDataset]] = {}


def register_dataset(name: str) -> Callable:
    """Class decorator: make a DMLDataset available as `data.name=<name>` in configs."""

    def wrap(factory: Callable[..., DMLDataset]) -> Callable[..., DMLDataset]:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        DATASETS[name] = factory
        return factory

    return wrap


def _import_builtin_datasets() -> None:
    # Importing the modules runs their @register_dataset decorators.
    import importlib

    for module in ("digits", "celeba", "lfw", "cub", "folder"):
        try:
            importlib.import_module(f"fairdml.data.{module}")
        except ModuleNotFoundError as error:  # a reader not written yet must not break the others
            if error.name != f"fairdml.data.{module}":
                raise


def create_dataset(name: str, **kwargs: Any) -> DMLDataset:
    """Build a registered dataset; unknown names and unknown options fail naming the valid ones."""
    _import_builtin_datasets()
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; registered datasets: {sorted(DATASETS)}")
    factory = DATASETS[name]
    parameters = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(kwargs) - set(parameters))
        if unknown:
            valid = [p for p in parameters if p != "self"]
            raise TypeError(f"dataset {name!r} got unknown option(s) {unknown}; valid options: {valid}")
    return factory(**kwargs)
