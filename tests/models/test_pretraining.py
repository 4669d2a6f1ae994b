"""fairdml's own pretrained digits backbone: the data it sees, the cache, determinism, loading by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fairdml.data.digits import single_digit_images
from fairdml.models import backbones, pretraining
from fairdml.models.pretraining import DigitsRecipe, cached_weights, recipe_for

TINY = {"images": 256, "epochs": 1, "batch_size": 64, "held_out": 64}


def test_pretraining_images_show_one_digit_half_in_each_style():
    images, digits, styles = single_digit_images(200, seed=3)
    assert images.shape == (200, 32, 32, 3) and images.dtype == np.uint8
    assert styles.sum() == 100 and set(digits.tolist()) <= set(range(10))
    majority = images[styles == 0]  # light ink on black: one half of every image is blank
    left, right = majority[:, :, :16].max(axis=(1, 2, 3)), majority[:, :, 16:].max(axis=(1, 2, 3))
    assert np.all((left == 0) ^ (right == 0))
    again = single_digit_images(200, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (images, digits, styles)))


@pytest.mark.parametrize(
    ("path", "task", "style"),
    [("fairdml:digits", "digits", "global"), ("fairdml:rotations-strokes", "rotations", "strokes")],
)
def test_names_give_their_recipe(path, task, style):
    recipe = recipe_for(path, "test_resnet")
    assert (recipe.task, recipe.minority_style, recipe.backbone) == (task, style, "test_resnet")


@pytest.mark.parametrize("path", ["fairdml:imagenet", "fairdml:digits-blue"])
def test_unknown_names_are_refused_naming_what_exists(path):
    with pytest.raises(ValueError, match="TASK one of \\['digits', 'rotations'\\]"):
        recipe_for(path, "test_resnet")


@pytest.mark.parametrize("task", ["digits", "rotations"])
def test_built_once_deterministic_and_rebuilt_when_altered(task, tmp_path, monkeypatch):
    recipe = DigitsRecipe(task=task, **TINY)
    first = cached_weights(recipe, tmp_path / "a")
    card = json.loads(first.with_suffix(".json").read_text())
    assert card["recipe"]["task"] == task and set(card["held_out_accuracy"]) == {"majority", "minority"}
    # the same recipe in another folder gives the same bytes
    assert cached_weights(recipe, tmp_path / "b").read_bytes() == first.read_bytes()
    # a second call finds the file and builds nothing
    monkeypatch.setattr(pretraining, "pretrain_digits", lambda r: pytest.fail("built again"))
    assert cached_weights(recipe, tmp_path / "a") == first
    # an altered file no longer matches its SHA-256, so it is built again (not loaded)
    monkeypatch.undo()
    original = first.read_bytes()
    first.write_bytes(original[:-8] + b"\x00" * 8)
    assert cached_weights(recipe, tmp_path / "a").read_bytes() == original


def test_another_recipe_gets_another_file(tmp_path):
    a = cached_weights(DigitsRecipe(**TINY), tmp_path)
    b = cached_weights(DigitsRecipe(**{**TINY, "seed": 1}), tmp_path)
    assert a != b and a.read_bytes() != b.read_bytes()


def test_the_backbone_loads_the_cached_weights_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRDML_CACHE", str(tmp_path))
    monkeypatch.setattr(backbones, "recipe_for", lambda path, name: DigitsRecipe(backbone=name, **TINY))
    model = backbones.create_backbone("test_resnet", "fairdml:rotations")
    (weights,) = (tmp_path / "pretrained").glob("*.safetensors")
    saved = load_file(str(weights))
    assert saved.keys() == model.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
