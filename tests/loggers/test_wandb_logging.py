"""W&B tracking: an offline run of a few tiny steps, read back from its run folder with wandb's own reader."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from helpers.wandb_files import find_run_file, read_offline_run, read_records

from fairdml.callbacks.wandb_media import report_table
from fairdml.config import compose_config
from fairdml.loggers import SafeWandbLogger, wandb_mode
from fairdml.train import run_training

GROUPS = ("majority", "minority")
EPOCHS = 3


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> Path:
    """One tiny training with W&B offline (artifacts on), selecting the checkpoint by the Recall@1 gap."""
    from helpers.tiny import TINY_OVERRIDES

    run_dir = tmp_path_factory.mktemp("wandb") / "run"
    overrides = [
        *TINY_OVERRIDES,
        f"run_dir={run_dir}",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.limit_train_batches=2",
        "data.split={train:0.5,val:0.3,test:0.2}",  # 9 validation classes: Recall@1 that can move
        "logger.wandb.enabled=true",
        "logger.wandb.log_model=true",
        "checkpoint.monitor=val/recall_at_1/gap",
        "checkpoint.mode=min",
    ]
    return run_training(compose_config(overrides))


def sections_allowed() -> set[str]:
    """Sections a run may log: figures, per-group figures, training, W&B's own (`trainer/global_step`)."""
    return {"val", "val_groups", "test", "test_groups", "train", "trainer", "parade"}


def _csv_validation_rows(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("val/recall_at_1")]
    return [{key: float(value) for key, value in row.items() if value} for row in rows]


def test_offline_history_has_per_group_keys_per_epoch(offline_run):
    run = read_offline_run(offline_run / "wandb")
    validations = [row for row in run["history"] if "val/recall_at_1" in row]
    csv_rows = _csv_validation_rows(offline_run)  # the CSV logger is an independent record of the same run
    assert len(validations) == len(csv_rows) >= 2  # one row per validation epoch
    for row, csv_row in zip(validations, csv_rows):
        groups = [row[f"val_groups/recall_at_1/{group}"] for group in GROUPS]
        assert row["val/recall_at_1/gap"] == pytest.approx(max(groups) - min(groups), abs=1e-6)
        assert row["val/recall_at_1/worst"] == pytest.approx(min(groups), abs=1e-6)
        for key in ("val/recall_at_1", "val_groups/map_at_r/minority", "val/recall_at_1/ratio", "epoch"):
            assert row[key] == pytest.approx(csv_row[key], abs=1e-6), key
    # W&B's panel sections (a key's part before the first "/"): headline figures apart from one panel per group
    sections = {key.split("/", 1)[0] for row in run["history"] for key in row if "/" in key}
    assert {"val", "val_groups", "test", "test_groups"} <= sections <= sections_allowed()
    # the resolved config, as the run folder's config.yaml has it
    assert run["config"]["model"]["backbone"] == "test_resnet"
    assert run["config"]["checkpoint"]["monitor"] == "val/recall_at_1/gap"
    assert run["id"] == (offline_run / "wandb_run_id.txt").read_text().strip()


def test_offline_run_has_group_tables_media_and_artifacts(offline_run):
    run_file = find_run_file(offline_run / "wandb")
    files = run_file.parent / "files"
    report = json.loads((offline_run / "report.json").read_text())
    (test_table,) = (files / "media" / "table" / "test").glob("groups_*.table.json")
    table = json.loads(test_table.read_text())
    rows = {row[0]: dict(zip(table["columns"], row)) for row in table["data"]}
    assert set(rows) == {*GROUPS, "overall"}
    for group in GROUPS:
        assert rows[group]["n"] == report["groups"][group]["n"]
        assert rows[group]["recall@1"] == pytest.approx(report["groups"][group]["recall@1"])
    validations = len(_csv_validation_rows(offline_run))
    assert len(list((files / "media" / "table" / "val").glob("groups_*.table.json"))) == validations
    images = {path.name.split("_")[0] for path in (files / "media" / "images" / "test").glob("*.png")}
    assert images == {"embeddings", "threshold"}

    artifacts = [record["artifact"] for record in read_records(run_file) if record["type"] == "artifact"]
    by_name = {artifact["name"]: artifact for artifact in artifacts if artifact["type"] == "model"}
    assert set(by_name) == {f"model-{run_file.stem[4:]}", f"embedding-model-{run_file.stem[4:]}"}
    exported = {entry["path"] for entry in by_name[f"embedding-model-{run_file.stem[4:]}"]["manifest"]["contents"]}
    assert exported == {"model.pt", "report.json"}


def test_checkpoint_kept_by_the_fairness_key(offline_run):
    """checkpoint.monitor=val/recall_at_1/gap, mode min: the best checkpoint is the epoch of the smallest gap."""
    gaps = [row["val/recall_at_1/gap"] for row in _csv_validation_rows(offline_run)]
    best_epoch = min(range(len(gaps)), key=lambda epoch: (gaps[epoch], epoch))  # ties keep the first
    report = json.loads((offline_run / "report.json").read_text())
    assert Path(report["meta"]["best_checkpoint"]).name == f"best-{best_epoch:03d}.ckpt"
    state = torch.load(offline_run / report["meta"]["best_checkpoint"], map_location="cpu", weights_only=True)
    (checkpoint_state,) = [
        value for key, value in state["callbacks"].items() if key.startswith("ModelCheckpoint{'monitor': 'val/")
    ]
    assert float(checkpoint_state["best_model_score"]) == pytest.approx(gaps[best_epoch], abs=1e-6)


def test_online_without_key_falls_back_to_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.warns(UserWarning, match="no W&B key"):
        assert wandb_mode("online") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("online") == "online"
    assert wandb_mode("offline") == "offline"
    with pytest.raises(ValueError, match="offline, online or disabled"):
        wandb_mode("sometimes")


class _FailingExperiment:
    calls = 0

    def log(self, *args, **kwargs):
        _FailingExperiment.calls += 1
        raise ConnectionError("network is unreachable")


def test_a_wandb_failure_warns_once_and_never_raises(tmp_path):
    logger = SafeWandbLogger(save_dir=str(tmp_path), mode="offline")
    logger._experiment = _FailingExperiment()
    with pytest.warns(UserWarning, match="W&B logging stopped after log_metrics failed"):
        logger.log_metrics({"val/recall_at_1": 0.5}, step=0)
    assert logger.broken
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the next calls are silent no-ops
        logger.log_metrics({"val/recall_at_1": 0.6}, step=1)
    assert _FailingExperiment.calls == 1


def test_report_table_has_a_row_per_group_and_overall():
    report = {
        "n": 30,
        "overall": {"recall@1": 0.5, "attribute_leakage": 0.7},
        "groups": {"a": {"n": 20, "recall@1": 0.6}, "b": {"n": 10, "small": True, "recall@1": 0.3}},
        "gaps": {"recall@1": {"max_minus_min": 0.3, "min_over_max": 0.5, "worst_group": "a"}},
    }
    columns, rows = report_table(report)
    assert columns == ["group", "n", "small", "recall@1", "worst_in"]
    assert rows == [["a", 20, False, 0.6, "recall@1"], ["b", 10, True, 0.3, ""], ["overall", 30, False, 0.5, ""]]
    assert all(not isinstance(value, float) or math.isfinite(value) for row in rows for value in row)
