"""End-to-end training on the embedded data with a tiny timm backbone."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fairdml.config import compose_config, to_container
from fairdml.data.datamodule import DMLDataModule
from fairdml.models.embedding import load_embedding_model
from fairdml.models.module import DMLModule
from fairdml.resume import resume_checkpoint
from fairdml.train import run_training


def _module_and_data(overrides):
    cfg = compose_config(overrides)
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    datamodule.setup()
    module = DMLModule(to_container(cfg), 100, datamodule.group_names, datamodule.group_attribute)
    return cfg, module, datamodule


def _fixed_batch_loss(module: DMLModule, batch: dict) -> float:
    # train mode (batch statistics): eval-mode BatchNorm would judge the running averages, not the weights
    with torch.no_grad():
        embeddings = module(batch["image"])
        return float(module.loss(embeddings, batch["label"]))


def test_a_few_steps_lower_the_loss(tiny_overrides):
    L.seed_everything(0)
    # contrastive loss without a miner: the same pairs are scored before and after, so the comparison is fair
    cfg, module, datamodule = _module_and_data([*tiny_overrides, "loss=contrastive", "optim.scheduler=none"])
    batch = next(iter(datamodule.train_dataloader()))
    before = _fixed_batch_loss(module, batch)
    trainer = L.Trainer(
        max_steps=25, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, use_distributed_sampler=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    after = _fixed_batch_loss(module, batch)
    assert after < 0.8 * before, (before, after)


def test_train_writes_run_folder_and_checkpoint_round_trips(tiny_overrides, tmp_path):
    run_dir = run_training(compose_config([*tiny_overrides, f"run_dir={tmp_path / 'run'}"]))
    for name in ("config.yaml", "report.json", "embeddings_test.npz", "data_summary.json", "model.pt"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "csv" / "metrics.csv").read_text().count("val/recall_at_1") >= 1
    report = json.loads((run_dir / "report.json").read_text())
    assert set(report["groups"]) == {"majority", "minority"}
    # intervals by default (class-level bootstrap): recall@1 overall, every group and the gap
    assert set(report["intervals"]["recall@1"]) == {"overall", "majority", "minority", "gap"}
    assert "test/recall_at_1/gap/low" in (run_dir / "csv" / "metrics.csv").read_text()
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert report["n"] == summary["splits"]["test"]["n"]
    saved = np.load(run_dir / "embeddings_test.npz")
    assert saved["embeddings"].shape[0] == report["n"] and set(saved["groups"]) == {"majority", "minority"}

    # checkpoint: loads with weights_only=True (plain-dict hyper-parameters) and restores the same weights
    checkpoint = sorted((run_dir / "checkpoints").glob("*.ckpt"))[0]
    raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    restored = DMLModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    for key, value in raw["state_dict"].items():
        assert torch.equal(restored.state_dict()[key], value), key

    # the exported model gives the same embeddings as the checkpointed module
    exported = load_embedding_model(run_dir / "model.pt")
    images = torch.randn(4, 3, 32, 32)
    restored.eval()
    with torch.no_grad():
        assert torch.allclose(exported(images), restored(images), atol=1e-6)


def test_resume_continues_from_last_checkpoint(tiny_overrides, tmp_path):
    run_dir = tmp_path / "run"
    common = [*tiny_overrides, f"run_dir={run_dir}", "evaluation.test_after_fit=false"]
    run_training(compose_config(common))
    first = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    run_training(compose_config([*common, "resume=last", "trainer.max_epochs=2"]))
    second = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert second["global_step"] == 2 * first["global_step"]
    # the history survives the resume, and epoch 0 was trained once (continued, not restarted)
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("val/recall_at_1")]
    assert [int(row["epoch"]) for row in rows] == [0, 1]


def test_resume_without_checkpoint_names_the_path(tiny_overrides, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        run_training(compose_config([*tiny_overrides, f"run_dir={tmp_path / 'none'}", "resume=last"]))


def test_nan_loss_errors_naming_the_step(tiny_overrides):
    cfg, module, datamodule = _module_and_data(tiny_overrides)
    module.add_loss_term(lambda m, step: {"broken": torch.tensor(float("nan"))})
    trainer = L.Trainer(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        use_distributed_sampler=False, num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    with pytest.raises(FloatingPointError, match="global step 0, batch 0"):
        trainer.fit(module, datamodule=datamodule)


def test_nan_policy_skip_counts_batches(tiny_overrides):
    cfg, module, datamodule = _module_and_data([*tiny_overrides, "nan_policy=skip"])
    module.add_loss_term(lambda m, step: {"broken": torch.tensor(float("nan"))})
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        use_distributed_sampler=False, num_sanity_val_steps=0, limit_val_batches=0,
                        limit_train_batches=3)  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    assert module.skipped_nonfinite == 3


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "fairdml", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "audit", "card", "export", "compare", "evaluate"):
        assert command in out.stdout


def test_cli_bad_key_is_a_clear_error():
    out = subprocess.run(
        [sys.executable, "-m", "fairdml", "train", "trainer.max_epoch=1"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "Did you mean 'trainer.max_epochs'" in out.stderr


def test_resume_refuses_changed_settings_and_allows_the_listed_ones(tiny_overrides, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": {}}, tmp_path / "checkpoints" / "last.ckpt")
    OmegaConf.save(compose_config([*tiny_overrides, "optim.lr=0.5"]), tmp_path / "config.yaml")
    cfg = compose_config([*tiny_overrides, f"run_dir={tmp_path}", "resume=last", "data.minority_share=0.5"])
    with pytest.raises(ValueError, match=r"differ from .*config.yaml: data.minority_share, optim.lr\."):
        resume_checkpoint(cfg, tmp_path)
    allowed = ["optim.lr=0.5", "trainer.max_epochs=9", "data.num_workers=1", f"run_dir={tmp_path}", "resume=last"]
    path, _ = resume_checkpoint(compose_config([*tiny_overrides, *allowed]), tmp_path)
    assert path == str(tmp_path / "checkpoints" / "last.ckpt")


def test_every_epoch_trains_the_same_number_of_steps(tiny_overrides, tmp_path):
    # Regression: the sampler once yielded nothing every second epoch under Lightning.
    run_dir = tmp_path / "run"
    run_training(compose_config([*tiny_overrides, f"run_dir={run_dir}", "trainer.max_epochs=3",
                                 "evaluation.test_after_fit=false"]))  # fmt: skip
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("val/recall_at_1")]
    steps = [int(row["step"]) + 1 for row in rows]
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert steps[0] > 0 and steps == [steps[0] * (epoch + 1) for epoch in range(3)]
