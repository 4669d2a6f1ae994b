"""Keyword constructors (issue 28): `DMLModule(backbone=..., lr=...)` and `DMLDataModule(batch_size=...)` hold the
same full config as `from_config` with the same settings, train, and write checkpoints that load as before."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from fairdml.config import compose_config, to_container
from fairdml.data.datamodule import DMLDataModule
from fairdml.models.module import DMLModule

# Tiny data (20 classes of 8 images) and the data facts a module needs beside its settings.
DATA = {"options": {"num_classes": 20, "samples_per_class": 8}, "batch_size": 16}
DATA_OVERRIDES = ["data.options.num_classes=20", "data.options.samples_per_class=8", "data.batch_size=16"]
FACTS = {"num_classes": 20, "group_names": ["majority", "minority"], "group_attribute": "style"}
QUIET = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}


@pytest.mark.parametrize(
    ("keywords", "overrides"),
    [
        ({}, []),
        (
            {"backbone": "test_resnet", "embedding_dim": 32, "loss": "margin", "miner": "distance_weighted",
             "lr": 3e-4},
            ["model.backbone=test_resnet", "model.embedding_dim=32", "loss=margin",
             "loss.miner=distance_weighted", "optim.lr=3e-4"],
        ),
        (  # a preset with its own miner, then another miner: the preset's miner arguments do not carry over
            {"loss": "triplet", "loss_kwargs": {"margin": 0.3}, "miner": "hard", "miner_kwargs": {"margin": 0.1}},
            ["loss=triplet", "loss.kwargs.margin=0.3", "loss.miner=hard", "+loss.miner_kwargs.margin=0.1"],
        ),
        (
            {"optimizer": "sgd", "weight_decay": 0.0, "scheduler": "none", "ks": [1, 4], "seed": 3},
            ["optim=sgd", "optim.weight_decay=0.0", "optim.scheduler=none", "evaluation.ks=[1,4]", "seed=3"],
        ),
    ],
)  # fmt: skip
def test_keyword_module_equals_the_from_config_module(keywords, overrides):
    cfg = compose_config([*DATA_OVERRIDES, *overrides])
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    expected = DMLModule.from_config(cfg, datamodule)
    module = DMLModule(**keywords, **FACTS)
    config = expected.hparams["config"]
    # the data block is the data module's business: the module keeps the default one, as `fairdml train` would
    assert {**module.hparams["config"], "data": config["data"]} == config
    assert {key: module.hparams[key] for key in FACTS} == {key: expected.hparams[key] for key in FACTS}
    shapes = {key: value.shape for key, value in expected.state_dict().items()}
    assert {key: value.shape for key, value in module.state_dict().items()} == shapes


def test_keyword_data_module_equals_the_config_one():
    cfg = compose_config([*DATA_OVERRIDES, "data.minority_share=0.2", "data.split={train:0.7,val:0.1,test:0.2}"])
    datamodule = DMLDataModule(**DATA, minority_share=0.2, split={"train": 0.7, "val": 0.1, "test": 0.2})
    assert to_container(datamodule.cfg) == to_container(cfg.data)


def _positional_module() -> DMLModule:
    """The positional form, as every checkpoint written before the keywords holds it."""
    config = to_container(compose_config([*DATA_OVERRIDES, "model.embedding_dim=32", "optim.lr=1e-2"]))
    return DMLModule(config, FACTS["num_classes"], FACTS["group_names"], FACTS["group_attribute"])


@pytest.mark.parametrize(
    "build",
    [
        lambda: DMLModule(backbone="test_resnet", embedding_dim=32, loss="margin", lr=1e-2, **FACTS),
        _positional_module,
    ],
    ids=["keywords", "positional"],
)
def test_a_module_trains_a_step_and_its_checkpoint_round_trips(tmp_path, build):
    L.seed_everything(0)
    module = build()
    before = module.state_dict()["model.head.linear.weight"].clone()
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False, **QUIET)
    trainer.fit(module, datamodule=DMLDataModule(**DATA))
    assert trainer.global_step == 1
    assert not torch.equal(module.state_dict()["model.head.linear.weight"], before)

    path = tmp_path / "module.ckpt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw["hyper_parameters"]) == {"config", "num_classes", "group_names", "group_attribute"}  # as before
    restored = DMLModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert dict(restored.hparams) == dict(module.hparams)
    for key, value in module.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key


def test_an_unknown_keyword_names_it_and_the_closest_one():
    with pytest.raises(ValueError, match="DMLModule has no keyword 'embeding_dim'") as caught:
        DMLModule(embeding_dim=32, **FACTS)
    message = str(caught.value)
    assert "Did you mean 'embedding_dim'?" in message and "'backbone'" in message and "\n" not in message
    with pytest.raises(ValueError, match="DMLDataModule has no keyword 'batchsize'.*Did you mean 'batch_size'"):
        DMLDataModule(batchsize=16)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"embedding_dim": 0}, "invalid configuration: embedding_dim=0: must be >= 1"),
        ({"lr": -1.0, "scheduler": "linear"}, "lr=-1.0: must be > 0; scheduler='linear': must be cosine, step or none"),
        ({"embedding_dim": "big"}, "embedding_dim='big' (model.embedding_dim): Value 'big' of type 'str'"),
        ({"loss": "marginal"}, "unknown loss 'marginal'; valid losses:"),
        ({"loss_kwargs": 0.2}, "loss_kwargs=0.2: must be a dict"),
        ({"loss_kwargs": {"margn": 0.2}}, "'margn': 0.2}: ModuleWithRecords.__init__() got an unexpected keyword "
         "argument 'margn'"),
    ],
)  # fmt: skip
def test_a_bad_value_fails_in_one_line_naming_it(keywords, message):
    with pytest.raises(ValueError) as caught:
        DMLModule(**keywords, **FACTS)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_config_and_keywords_together_or_missing_data_facts_are_refused():
    config = to_container(compose_config([]))
    with pytest.raises(TypeError, match="a whole config or keyword settings, not both"):
        DMLModule(config, lr=0.1, **FACTS)
    with pytest.raises(TypeError, match="needs num_classes, group_names and group_attribute"):
        DMLModule(lr=0.1)
    with pytest.raises(TypeError, match="a data config or keyword settings, not both"):
        DMLDataModule(compose_config([]).data, batch_size=16)
