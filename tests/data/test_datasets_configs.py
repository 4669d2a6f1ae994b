"""configs/data/*.yaml name a registered reader and only options it accepts; configs/experiment/{celeba,lfw,
cub}.yaml compose with the paper's settings and train end to end (tiny model, CelebA-format fixture)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from helpers.fixtures_datasets import population, write_population
from omegaconf import OmegaConf

from fairdml.config import compose_config
from fairdml.data.registry import DATASETS, discover_datasets
from fairdml.evaluate import run_evaluate
from fairdml.train import run_training

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"


@pytest.mark.parametrize("name", sorted(path.stem for path in CONFIGS.glob("*.yaml")))
def test_config_matches_reader(name):
    cfg = OmegaConf.load(CONFIGS / f"{name}.yaml")
    discover_datasets()
    assert cfg.name == name and name in DATASETS
    parameters = inspect.signature(DATASETS[name]).parameters
    assert set(cfg.options) <= set(parameters) - {"root"}
    chosen = cfg.options.get("sensitive_attributes")
    if chosen is not None:
        assert cfg.sensitive_attribute in chosen


def test_every_in_tree_reader_has_a_config():
    """The two files of an in-tree reader: fairdml/data/<name>.py and configs/data/<name>.yaml."""
    discover_datasets()
    in_tree = {name for name, factory in DATASETS.items() if factory.__module__.startswith("fairdml.data.")}
    assert in_tree >= {"digits", "celeba", "lfw", "cub", "folder"}
    assert in_tree == {path.stem for path in CONFIGS.glob("*.yaml")}


PAPER_SETTINGS = {
    "model.backbone": "resnet50", "model.embedding_dim": 128, "data.image_size": 224,
    "loss.name": "margin", "loss.miner": "distance_weighted", "data.batch_size": 112,
    "data.samples_per_class": 2, "optim.name": "adam", "optim.lr": 1e-5,
    "optim.backbone_lr": 1e-5, "optim.loss_lr": 5e-4, "optim.weight_decay": 4e-4, "optim.scheduler": "none",
    "trainer.max_epochs": 150, "data.minority_share": 0.1, "evaluation.downstream": True,
}  # fmt: skip


@pytest.mark.parametrize("name", ["celeba", "lfw", "cub"])
def test_experiment_composes_with_the_paper_settings(name):
    cfg = compose_config([f"experiment={name}"])
    assert cfg.experiment == name and cfg.data.name == name
    assert {key: OmegaConf.select(cfg, key) for key in PAPER_SETTINGS} == PAPER_SETTINGS
    assert not OmegaConf.select(cfg, "callbacks")  # class-balanced sampling: no mitigation callback
    assert cfg.data.sensitive_attribute in cfg.data.options.sensitive_attributes
    on_gpu = compose_config([f"experiment={name}", "trainer=gpu", "model=tiny"])
    assert on_gpu.trainer.accelerator == "gpu" and on_gpu.trainer.max_epochs == 150
    assert on_gpu.model.backbone == "test_resnet" and on_gpu.model.embedding_dim == 128


def _celeba_overrides(tmp_path, attributes: str) -> list[str]:
    root = tmp_path / "celeba"
    root.mkdir(exist_ok=True)
    write_population("celeba", root, population(24, 4, 10))
    return [
        "experiment=celeba", "model=tiny", f"data.root={root}",
        f"data.options.sensitive_attributes={attributes}", "evaluation.downstream_label=Smiling",
        "data.image_size=32", "data.batch_size=8",
        "data.samples_per_class=2", "data.eval_batch_size=64", "data.num_workers=0", "data.pin_memory=false",
        "data.persistent_workers=false", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "logger=csv", "evaluation.leakage=false", f"output_dir={tmp_path / 'outputs'}",
    ]  # fmt: skip


def test_celeba_experiment_trains_and_evaluates_downstream(tmp_path):
    run_dir = run_training(compose_config(_celeba_overrides(tmp_path, "[Male,Smiling]")))
    downstream = json.loads((run_dir / "report.json").read_text())["downstream"]
    assert downstream["label"] == "Smiling" and downstream["group_attribute"] == "Male"
    assert set(downstream["balanced"]["groups"]) == {"not_Male", "Male"}
    assert downstream["unbalanced"]["n"] == downstream["balanced"]["n"] > 0
    assert run_evaluate(run_dir) == downstream  # `fairdml evaluate` on the folder gives the same figures


def test_downstream_label_missing_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="add it to data.options.sensitive_attributes"):
        run_training(compose_config(_celeba_overrides(tmp_path, "[Male]")))
    assert not (tmp_path / "outputs" / "celeba").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))
