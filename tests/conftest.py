"""Shared fixtures: tiny configs so every test runs in seconds on 2 CPU cores."""

from __future__ import annotations

import os

import pytest
import torch
from helpers.tiny import TINY_OVERRIDES

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_overrides(tmp_path) -> list[str]:
    return [*TINY_OVERRIDES, f"output_dir={tmp_path / 'outputs'}"]
