"""Mitigations as plugins: built from the `callbacks` config group, described in the report, each acting."""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from fairdml.callbacks.instantiate import build_callbacks, instantiate_callbacks
from fairdml.config import compose_config, config_dir
from fairdml.config_checks import config_problems
from fairdml.data.datamodule import DMLDataModule
from fairdml.mitigations.base import Mitigation
from fairdml.mitigations.group_balanced import GroupBalancedSampling
from fairdml.mitigations.parade import Parade
from fairdml.train import run_training

PARADE_TARGET = "fairdml.mitigations.parade.Parade"


def test_parade_yaml_lists_every_argument_with_the_signature_default():
    """One fact, one place: the YAML mirrors `Parade.__init__`, so the two cannot drift apart."""
    entry = OmegaConf.to_container(OmegaConf.load(config_dir() / "callbacks" / "parade.yaml"))["parade"]
    assert entry.pop("_target_") == PARADE_TARGET
    defaults = {name: p.default for name, p in inspect.signature(Parade.__init__).parameters.items() if name != "self"}
    defaults["attributes"] = list(defaults["attributes"])
    defaults["attribute_loss_kwargs"] = defaults["attribute_loss_kwargs"] or {}
    defaults["attribute_miner_kwargs"] = defaults["attribute_miner_kwargs"] or {}
    assert entry == defaults


def test_unknown_key_is_named_with_the_valid_ones_before_any_work():
    cfg = compose_config(["callbacks=parade", "callbacks.parade.strenght=1"])
    (problem,) = config_problems(cfg)
    assert "callbacks.parade: unknown key(s) ['strenght'] (did you mean 'strength'?)" in problem
    assert "valid keys of Parade" in problem


def test_every_invalid_argument_is_listed_at_once():
    cfg = compose_config([
        "callbacks=parade", "callbacks.parade.strength=-1", "callbacks.parade.schedule=exponential",
        "callbacks.parade.projection_lr=0", "callbacks.parade.attribute_loss_kwargs.no_such_option=1",
    ])  # fmt: skip
    (problem,) = config_problems(cfg)
    for part in ("strength=-1 must be >= 0", "schedule='exponential' must be one of", "projection_lr=0 must be > 0"):
        assert part in problem, problem
    cfg = compose_config(["callbacks=parade", "callbacks.parade.attribute_loss_kwargs.no_such_option=1"])
    assert "attribute_loss='margin' with its kwargs, or the miner" in config_problems(cfg)[0]


def test_bad_entries_are_named():
    _, problems = build_callbacks({
        "a": {"_target_": "fairdml.no_such_module.Thing"},
        "b": {"_target_": "collections.OrderedDict"},
        "c": {"strength": 1},
        "d": None,  # removed by an override such as callbacks.d=null
        "p1": {"_target_": PARADE_TARGET},
        "p2": {"_target_": PARADE_TARGET},
    })  # fmt: skip
    assert problems[0].startswith("callbacks.a._target_='fairdml.no_such_module.Thing' cannot be imported")
    assert problems[1] == "callbacks.b._target_='collections.OrderedDict' is not a Lightning Callback"
    assert problems[2].startswith("callbacks.c: no _target_")
    assert problems[3] == "callbacks.p2: a second 'parade' mitigation (first: callbacks.p1)"
    assert len(problems) == 4
    with pytest.raises(ValueError, match="invalid callbacks: callbacks.a"):
        instantiate_callbacks({"a": {"_target_": "fairdml.no_such_module.Thing"}})


def test_old_keys_say_where_they_moved():
    with pytest.raises(ValueError, match="'parade' has moved: PARADE is a callback now"):
        compose_config(["parade.strength=1"])
    with pytest.raises(ValueError, match="'data.sampler' has moved"):
        compose_config(["data.sampler=group_balanced"])
    with pytest.raises(ValueError, match="'parade' has moved"):
        compose_config(["parade=on"])


def test_a_mitigation_must_say_what_it_is():
    with pytest.raises(TypeError, match="must set the class attributes name, title and summary"):

        class Unnamed(Mitigation):
            title = "x"


def test_experiments_compose_their_mitigations():
    assert list(compose_config(["experiment=group_balanced_parade"]).callbacks) == ["group_balanced", "parade"]
    assert compose_config(["experiment=parade"]).callbacks.parade.encoder_objective == "covariance"
    assert compose_config(["experiment=parade_paper"]).callbacks.parade.encoder_objective == "reversal"
    assert compose_config(["experiment=parade", "callbacks.parade=null"]).callbacks.parade is None


def _minority_classes_per_batch(datamodule: DMLDataModule) -> float:
    view = datamodule.views["train"]
    groups = view.attribute_column(datamodule.group_attribute)
    sampler = datamodule.train_dataloader().batch_sampler
    counts = [len({view.labels[i] for i in batch if groups[i] == datamodule.minority_code}) for batch in sampler]
    return float(np.mean(counts))


def test_group_balanced_sampling_balances_the_batches_it_switches_on(tiny_overrides):
    cfg = compose_config([*tiny_overrides, "data.options.num_classes=40"])
    datamodule = DMLDataModule(cfg.data, seed=0)
    datamodule.setup()
    plain = _minority_classes_per_batch(datamodule)
    GroupBalancedSampling().setup(SimpleNamespace(datamodule=datamodule), None, "fit")
    assert datamodule.group_balanced
    balanced = _minority_classes_per_batch(datamodule)
    classes_per_batch = cfg.data.batch_size // cfg.data.samples_per_class
    assert plain < classes_per_batch / 2 - 1  # the minority is 10 % of training: rare in a plain batch
    assert balanced == pytest.approx(classes_per_batch / 2)  # two groups: half of each batch's classes
    with pytest.raises(TypeError, match="needs a data module with a `group_balanced` switch"):
        GroupBalancedSampling().setup(SimpleNamespace(datamodule=object()), None, "fit")


def test_a_run_reports_each_mitigation_in_its_report_and_card(tiny_overrides, tmp_path):
    overrides = [
        *tiny_overrides, "experiment=group_balanced_parade", "callbacks.parade.projection_hidden=16",
        "callbacks.parade.attribute_embedding_dim=8", "callbacks.parade.measure_steps=20",
        f"run_dir={tmp_path / 'both'}",
    ]  # fmt: skip
    report = json.loads((run_training(compose_config(overrides)) / "report.json").read_text())
    mitigations = report["mitigations"]
    assert list(mitigations) == ["group_balanced", "parade"]
    assert mitigations["group_balanced"]["settings"] == {}
    assert mitigations["parade"]["settings"]["projection_hidden"] == 16
    assert mitigations["parade"]["settings"]["attributes"] == ["style"]
    assert set(mitigations["parade"]["measured"]) == {"style"}
    card = (tmp_path / "both" / "MODEL_CARD.md").read_text()
    assert "Group-balanced sampling" in card and "PARADE (partial attribute de-correlation)" in card
