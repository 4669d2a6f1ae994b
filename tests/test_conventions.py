"""The ecosystem's conventions (issue 28, first part): `trainer.*` is Lightning's Trainer, `--cfg job` as in Hydra,
W&B's own environment variables, no third-party noise, and a run that ends with its figures."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.cli import cli_error
from helpers.tiny import TINY_OVERRIDES
from omegaconf import OmegaConf

from fairdml.cli import main
from fairdml.config import compose_config
from fairdml.train import run_training

RUN = [*TINY_OVERRIDES, "evaluation.model_card=false"]


def test_any_trainer_argument_is_accepted_and_reaches_the_trainer(tmp_path):
    plain = run_training(compose_config([*RUN, f"run_dir={tmp_path / 'plain'}"]))
    accumulate = [*RUN, f"run_dir={tmp_path / 'acc'}", "trainer.accumulate_grad_batches=2"]
    accumulated = run_training(compose_config(accumulate))
    steps = [
        torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
        for run in (plain, accumulated)
    ]
    assert steps[1] == -(-steps[0] // 2)  # one optimiser step per two batches (the last one partial)
    assert OmegaConf.load(accumulated / "config.yaml").trainer.accumulate_grad_batches == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.acumulate_grad_batches=2", "not an argument of Lightning's Trainer. Did you mean "
         "'trainer.accumulate_grad_batches'?"),
        ("trainer.max_epoch=3", "Did you mean 'trainer.max_epochs'?"),
        ("trainer.callbacks=[]", "fairdml sets this Trainer argument itself; use the callbacks config group"),
        ("trainer.default_root_dir=/x", "use run_dir="),
        ("hydra.run.dir=/somewhere", "(only hydra.searchpath acts); the run folder is set with run_dir="),
    ],
)  # fmt: skip
def test_wrong_trainer_and_hydra_keys_are_one_line(tmp_path, capsys, override, message):
    err = cli_error(capsys, ["train", *RUN, f"run_dir={tmp_path / 'run'}", override])
    assert message in err
    assert not (tmp_path / "run").exists()


def test_cfg_job_prints_the_composed_config_and_runs_nothing(tmp_path, capsys):
    main(["train", "--cfg", "job", "experiment=parade", "trainer.accumulate_grad_batches=2", f"run_dir={tmp_path}/r"])
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed.experiment == "parade" and printed.trainer.accumulate_grad_batches == 2
    assert printed.callbacks.parade.strength == 0.03 and not (tmp_path / "r").exists()


def test_wandb_follows_its_environment_and_an_explicit_value_wins(tmp_path, monkeypatch):
    def run(name: str, *extra: str):
        overrides = [*RUN, "logger.wandb.enabled=true", "logger.wandb.media=false", f"run_dir={tmp_path / name}"]
        folder = run_training(compose_config([*overrides, *extra]))
        return folder, OmegaConf.load(folder / "config.yaml").logger.wandb  # config.yaml says what was used

    monkeypatch.setenv("WANDB_MODE", "disabled")
    folder, used = run("a")
    assert not (folder / "wandb").exists() and used.mode == "disabled"  # WANDB_MODE=disabled: no W&B run at all
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "faces")
    monkeypatch.setenv("WANDB_TAGS", "a, b")
    folder, used = run("b")
    assert (used.mode, used.project, list(used.tags)) == ("offline", "faces", ["a", "b"])
    assert list((folder / "wandb").glob("offline-run-*"))
    _, used = run("c", "logger.wandb.project=mine", "logger.wandb.mode=disabled")
    assert (used.project, used.mode) == ("mine", "disabled")  # explicit values win over the environment


def test_a_run_prints_its_figures_and_no_third_party_noise(tmp_path, capfd):
    run = run_training(compose_config([*TINY_OVERRIDES, f"run_dir={tmp_path / 'run'}", "logger.wandb.enabled=true"]))
    out, err = capfd.readouterr()
    for noise in ("litlogger", "isinstance(treespec, LeafSpec)", "anonymous setting has no effect"):
        assert noise not in out + err, noise
    tail = out.strip().splitlines()[-8:]
    report = json.loads((run / "report.json").read_text())
    recall = [line for line in tail if line.startswith("recall@1")]
    assert recall and f"{report['overall']['recall@1']:.4f}" in recall[0]
    low, high = report["intervals"]["recall@1"]["gap"]
    assert f"[{low:.3f}, {high:.3f}]" in recall[0]  # the gap with its interval
    assert any(line.startswith("card: ") for line in tail) and "run finished" in tail[-1]


def test_mitigations_live_in_one_wing_and_old_targets_still_load():
    """Every mitigation is exported from `fairdml` and `fairdml.mitigations`; a config saved with the old
    `_target_: fairdml.callbacks.<module>.<Class>` builds the same class."""
    import hydra.utils

    import fairdml
    import fairdml.mitigations

    old = {
        "fairdml.callbacks.parade.Parade": fairdml.Parade,
        "fairdml.callbacks.group_balanced.GroupBalancedSampling": fairdml.GroupBalancedSampling,
        "fairdml.callbacks.group_weighting.ReweightedLoss": fairdml.ReweightedLoss,
        "fairdml.callbacks.group_weighting.WorstGroupLoss": fairdml.WorstGroupLoss,
        "fairdml.callbacks.mitigation.Mitigation": fairdml.Mitigation,
    }
    for target, cls in old.items():
        assert hydra.utils.get_class(target) is cls, target
        assert cls.__module__.startswith("fairdml.mitigations."), cls
        assert getattr(fairdml.mitigations, cls.__name__) is cls
    assert fairdml.Parade.__module__ == "fairdml.mitigations.parade"
