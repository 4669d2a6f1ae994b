"""configs/data/{celeba,lfw,cub,folder}.yaml name a registered reader and only options it accepts."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fairdml.data.registry import DATASETS, _import_builtin_datasets

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"


@pytest.mark.parametrize("name", ["celeba", "lfw", "cub", "folder"])
def test_config_matches_reader(name):
    cfg = OmegaConf.load(CONFIGS / f"{name}.yaml")
    _import_builtin_datasets()
    assert cfg.name == name and name in DATASETS
    parameters = inspect.signature(DATASETS[name]).parameters
    assert set(cfg.options) <= set(parameters) - {"root"}
    chosen = cfg.options.sensitive_attributes
    if chosen is not None:
        assert cfg.sensitive_attribute in chosen
