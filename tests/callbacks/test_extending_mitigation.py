"""docs/extending.md, "A mitigation": the worked example trains, acts as it says, and is reported."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
import yaml
from helpers.doc_blocks import code_blocks, python_blocks

from fairdml.callbacks.instantiate import build_callbacks
from fairdml.config import compose_config, to_container
from fairdml.data.datamodule import DMLDataModule
from fairdml.models.module import DMLModule

DOC, SECTION = "docs/extending.md", "A mitigation"


@pytest.fixture
def my_mitigations(monkeypatch):
    """The example's first block, importable as `my_mitigations` (as the reader's own file would be)."""
    module = types.ModuleType("my_mitigations")
    exec(compile(python_blocks(DOC, SECTION)[0], f"{DOC}:{SECTION}", "exec"), module.__dict__)  # noqa: S102
    monkeypatch.setitem(sys.modules, "my_mitigations", module)
    return module


def test_the_example_trains_and_is_reported(my_mitigations, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_blocks(DOC, SECTION)[1], f"{DOC}:{SECTION}", "exec"), namespace)  # noqa: S102
    run_dir = namespace["run_dir"]
    entry = json.loads((run_dir / "report.json").read_text())["mitigations"]["minority_boost"]
    assert entry["title"] == "Minority loss boost" and entry["settings"] == {"weight": 2.0}
    assert entry["measured"]["boosted_batches"] > 0
    assert "Minority loss boost" in (run_dir / "MODEL_CARD.md").read_text()


def test_the_term_is_weight_times_the_minority_class_loss(my_mitigations, tiny_overrides):
    cfg = compose_config(tiny_overrides)
    datamodule = DMLDataModule(cfg.data, seed=0)
    datamodule.setup()
    module = DMLModule(to_container(cfg), 30, datamodule.group_names, datamodule.group_attribute)
    module.trainer = types.SimpleNamespace(datamodule=datamodule)  # what group_codes reads  # type: ignore
    boost = my_mitigations.MinorityLossBoost(weight=3.0)
    boost.setup(types.SimpleNamespace(datamodule=datamodule), module, "fit")
    boost.setup(types.SimpleNamespace(datamodule=datamodule), module, "test")  # adds nothing more
    assert module._loss_terms == [boost.loss_term]
    torch.manual_seed(0)
    batch = next(iter(datamodule.train_dataloader()))
    groups = batch["attributes"][:, 0]
    batch["attributes"][:4, 0] = datamodule.minority_code  # at least two minority samples
    embeddings = torch.nn.functional.normalize(torch.randn(len(groups), cfg.model.embedding_dim), dim=1)
    minority = batch["attributes"][:, 0] == datamodule.minority_code
    by_hand = 3.0 * module.loss(embeddings[minority], batch["label"][minority])
    term = boost.loss_term(module, {"embeddings": embeddings, "batch": batch, "features": None})
    assert term["minority_boost"].item() == pytest.approx(by_hand.item())
    batch["attributes"][:, 0] = 1 - datamodule.minority_code  # no minority sample: no term
    assert boost.loss_term(module, {"embeddings": embeddings, "batch": batch, "features": None}) == {}


def test_the_yaml_builds_the_example(my_mitigations):
    entry = yaml.safe_load(code_blocks(DOC, SECTION, "yaml")[0])["minority_boost"]
    assert entry["_target_"] == "fairdml.callbacks.minority_boost.MinorityLossBoost"
    entry["_target_"] = "my_mitigations.MinorityLossBoost"  # the in-tree module does not exist
    (callback,), problems = build_callbacks({"minority_boost": entry})
    assert problems == [] and callback.hparams.weight == 1.0
    _, problems = build_callbacks({"minority_boost": {**entry, "weigth": 2}})
    assert "did you mean 'weight'?" in problems[0]
