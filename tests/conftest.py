"""Shared fixtures: tiny configs so every test runs in seconds on 2 CPU cores."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(min(2, torch.get_num_threads()))

# A 0.37M-parameter timm ResNet on 30 classes × 12 images: enough for real batches, fast to train.
TINY_OVERRIDES = [
    "model=tiny",
    "data.options.num_classes=30",
    "data.options.samples_per_class=12",
    "data.batch_size=32",
    "data.eval_batch_size=128",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "logger=csv",
    "evaluation.leakage=false",
]


@pytest.fixture
def tiny_overrides(tmp_path) -> list[str]:
    return [*TINY_OVERRIDES, f"output_dir={tmp_path / 'outputs'}"]
