"""Fault injection: killed runs resume to the same figures, run folders never mix, export uses the run's
own selection, every bad value or file is one clear line before any work (docs/reliability.md).

The SIGKILL tests run `tests/helpers/fault_runner.py` in subprocesses and are marked `slow` (`.ci/run` runs them).
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from helpers.cli import cli_error
from helpers.fixtures_datasets import write_heavy_tailed_folder_dataset
from torch.utils.data import DataLoader

from fairdml.callbacks.validation_guard import ValidationGuard
from fairdml.config import compose_config
from fairdml.export import export_run
from fairdml.models.embedding import load_embedding_model
from fairdml.train import run_training
from fairdml.utils.errors import ValidationSkippedError

RUNNER = Path(__file__).parent / "helpers" / "fault_runner.py"
FAST = ["evaluation.model_card=false"]


def _metrics_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def _validated(run_dir: Path) -> list[int]:
    return [int(row["epoch"]) for row in _metrics_rows(run_dir) if row.get("val/recall_at_1")]


# -- run folders ---------------------------------------------------------------------------------------
def test_existing_run_is_refused_and_overwrite_clears_it(tiny_overrides, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = [*tiny_overrides, *FAST, f"run_dir={run_dir}"]
    run_training(compose_config(args))
    before = (run_dir / "report.json").read_text()
    err = cli_error(capsys, ["train", *args])
    assert "already holds files" in err and "resume=last" in err and "overwrite=true" in err
    assert (run_dir / "report.json").read_text() == before  # nothing touched

    run_training(compose_config([*args, "overwrite=true", "seed=1"]))
    assert json.loads((run_dir / "report.json").read_text())["meta"]["seed"] == 1
    assert _validated(run_dir) == [0]  # the old run's rows are gone, not appended to
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["best-000.ckpt", "last.ckpt"], names  # no -v1 files beside old ones


def test_overwrite_refuses_a_folder_that_is_not_a_run(tiny_overrides, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    err = cli_error(capsys, ["train", *tiny_overrides, f"run_dir={folder}", "overwrite=true"])
    assert "not a folder a fairdml run made" in err
    assert (folder / "thesis.tex").read_text() == "keep me"


def test_run_dir_that_is_a_file_fails_before_any_work(tiny_overrides, tmp_path, capsys):
    path = tmp_path / "a_file"
    path.write_text("x")
    assert "is a file" in cli_error(capsys, ["train", *tiny_overrides, f"run_dir={path}"])


def test_resume_with_overwrite_is_a_contradiction(tiny_overrides, tmp_path, capsys):
    err = cli_error(capsys, ["train", *tiny_overrides, f"run_dir={tmp_path}", "resume=last", "overwrite=true"])
    assert "contradict" in err


def _fake_run(tmp_path: Path, checkpoint_bytes: bytes) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(checkpoint_bytes)
    (run_dir / "config.yaml").write_text("original: true\n")
    return run_dir


def test_corrupt_last_checkpoint_fails_before_the_run_folder_is_touched(tiny_overrides, tmp_path, capsys):
    buffer = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}, "epoch": 0}, buffer)
    run_dir = _fake_run(tmp_path, buffer.read_bytes()[:200])  # truncated
    err = cli_error(capsys, ["train", *tiny_overrides, f"run_dir={run_dir}", "resume=last"])
    assert "unreadable, truncated or corrupt" in err and "last.ckpt" in err
    assert (run_dir / "config.yaml").read_text() == "original: true\n"


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_malicious_checkpoint_is_refused_in_one_line(tiny_overrides, tmp_path, capsys):
    run_dir = _fake_run(tmp_path, b"")
    torch.save({"state_dict": {}, "payload": _RunsCode()}, run_dir / "checkpoints" / "last.ckpt")
    err = cli_error(capsys, ["train", *tiny_overrides, f"run_dir={run_dir}", "resume=last"])
    assert "refused to load" in err and "could run code" in err
    assert "this must never run" not in capsys.readouterr().out


def test_pickle_is_not_what_tests_load(tmp_path):
    # the malicious file above really holds a pickled callable (the refusal is not a read error)
    path = tmp_path / "x.ckpt"
    torch.save({"payload": _RunsCode()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


# -- export ----------------------------------------------------------------------------------------------
def test_export_uses_the_recorded_selection_and_never_overwrites(tiny_overrides, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_training(compose_config([*tiny_overrides, *FAST, f"run_dir={run_dir}", "trainer.max_epochs=2",
                                 "checkpoint.save_top_k=-1"]))  # fmt: skip
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["checkpoint"].startswith("checkpoints/best-") and selection["validated_epochs"] == [0, 1]
    # the selection is the best score among the validated epochs, by the monitored key
    scores = [float(row["val/recall_at_1"]) for row in _metrics_rows(run_dir) if row.get("val/recall_at_1")]
    assert selection["score"] == pytest.approx(max(scores))

    err = cli_error(capsys, ["export", str(run_dir)])
    assert "model.pt exists" in err and "--overwrite" in err

    # point the record at the epoch-0 checkpoint: export must follow it, not the highest file name
    selection["checkpoint"] = "checkpoints/best-000.ckpt"
    (run_dir / "selection.json").write_text(json.dumps(selection))
    written = export_run(str(run_dir), str(tmp_path / "exported.pt"))
    exported = load_embedding_model(written).state_dict()
    for name, expected_from in (("best-000.ckpt", True), ("best-001.ckpt", False)):
        state = torch.load(run_dir / "checkpoints" / name, weights_only=True)["state_dict"]
        model_state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        same = all(torch.equal(exported[k], v) for k, v in model_state.items())
        assert same is expected_from, name
    with pytest.raises(FileExistsError):
        export_run(str(run_dir), str(written))
    export_run(str(run_dir), str(written), overwrite=True)


def test_export_of_a_run_without_selection_names_what_to_do(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    err = cli_error(capsys, ["export", str(tmp_path)])
    assert "selection.json" in err and "checkpoints/<file>.ckpt" in err


# -- validation guard --------------------------------------------------------------------------------------
class _ShortSampler(torch.utils.data.Sampler):
    """Announces 4 batches, yields 3: the flaw that once skipped validation silently."""

    def __len__(self) -> int:
        return 4

    def __iter__(self):
        return iter([[0, 1], [2, 3], [4, 5]])


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/x", self.layer(batch).sum())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(torch.randn(6, 2), batch_sampler=_ShortSampler())

    def val_dataloader(self):
        return DataLoader(torch.randn(4, 2), batch_size=2)


def test_an_epoch_that_skips_its_validation_fails_loudly():
    trainer = L.Trainer(max_epochs=2, callbacks=[ValidationGuard()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, num_sanity_val_steps=0, use_distributed_sampler=False)  # fmt: skip
    with pytest.raises(ValidationSkippedError, match="epoch 0 ended after 3 of 4 announced"):
        trainer.fit(_Tiny())


def test_a_run_without_validation_says_so_in_the_report(tiny_overrides, tmp_path):
    run_dir = run_training(compose_config([*tiny_overrides, *FAST, f"run_dir={tmp_path / 'r'}",
                                           "trainer.limit_val_batches=0"]))  # fmt: skip
    report = json.loads((run_dir / "report.json").read_text())
    assert report["meta"]["best_checkpoint"] is None and report["meta"]["validated_epochs"] == []
    assert any("no epoch was validated" in message for message in report["warnings"])


def test_every_epoch_is_validated_on_heavy_tailed_class_sizes(tiny_overrides, tmp_path):
    table = write_heavy_tailed_folder_dataset(tmp_path / "lfw_like")
    not_digits = [o for o in tiny_overrides if not o.startswith("data.")]
    run_dir = run_training(compose_config([
        *not_digits, *FAST, f"run_dir={tmp_path / 'r'}", "data=folder", f"data.root={table.parent}",
        f"data.options.csv_file={table.name}", "data.sensitive_attribute=skin", "data.batch_size=16",
        "data.samples_per_class=2", "data.image_size=16", "trainer.max_epochs=3", "data.minority_share=null",
    ]))  # fmt: skip
    assert _validated(run_dir) == [0, 1, 2]
    meta = json.loads((run_dir / "report.json").read_text())["meta"]
    assert meta["validated_epochs"] == [0, 1, 2] and meta["best_checkpoint"].startswith("checkpoints/best-")


# -- bad values: one line naming the key, before any work ------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.lr=-1", "optim.lr=-1"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1"),
        ("data.image_size=0", "data.image_size=0"),
        ("model.embedding_dim=0", "model.embedding_dim=0"),
        ("seed=-5", "seed=-5"),
        ("data.samples_per_class=0", "data.samples_per_class=0"),
        ("data.batch_size=30", "multiple of data.samples_per_class=4"),
        ("+loss.kwargs.not_an_option=1", "loss.kwargs"),
        ("optim.backbone_lr=nan", "optim.backbone_lr=nan"),
        ("checkpoint.save_top_k=0", "checkpoint.save_top_k=0"),
        ("data.minority_share=1.5", "data.minority_share=1.5"),
        ("evaluation.min_group_size=0", "evaluation.min_group_size=0"),
    ],
)
def test_bad_value_is_one_line_naming_the_key_before_any_work(tiny_overrides, tmp_path, capsys, override, named):
    run_dir = tmp_path / "run"
    err = cli_error(capsys, ["train", *tiny_overrides, f"run_dir={run_dir}", override])
    assert named in err and "must be" in err or "loss.kwargs" in err, err
    assert not run_dir.exists()


# -- SIGKILL at several points, then resume=last: the same figures as an uninterrupted run ------------------------
KILL_OVERRIDES = [
    "model=tiny", "data.options.num_classes=30", "data.options.samples_per_class=12", "data.batch_size=32",
    "data.eval_batch_size=128", "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "logger=csv",
    "evaluation.leakage=false", "evaluation.model_card=false", "trainer.log_every_n_steps=1",
    # the training loss keeps falling, so the selected checkpoint is a late one (the figures depend on it)
    "checkpoint.monitor=train/loss", "checkpoint.mode=min",
]  # fmt: skip


def _train_in_subprocess(fault: str, run_dir: Path, *extra: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(RUNNER.parents[1]), "WANDB_MODE": "disabled"}
    command = [sys.executable, str(RUNNER), fault, *KILL_OVERRIDES, f"run_dir={run_dir}", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600).returncode


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("faults") / "reference"
    assert _train_in_subprocess("none", run_dir) == 0
    return run_dir


def _numbers(value, prefix=""):
    """Every number in a report, by its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{prefix}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{prefix}/{i}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield prefix, value


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["train:1:2", "validation:1", "checkpoint_write:3", "train:0:1"])
def test_killed_run_resumes_to_the_same_report(uninterrupted, tmp_path, fault):
    reference = json.loads((uninterrupted / "report.json").read_text())
    assert reference["meta"]["best_checkpoint"] != "checkpoints/best-000.ckpt"  # a late checkpoint is tested
    run_dir = tmp_path / "run"
    assert _train_in_subprocess(fault, run_dir) == -9  # SIGKILL
    if fault == "train:0:1":  # killed before the first checkpoint: nothing to resume, start again
        assert not (run_dir / "checkpoints" / "last.ckpt").exists()
        assert _train_in_subprocess("none", run_dir, "overwrite=true") == 0
    else:
        assert _train_in_subprocess("none", run_dir, "resume=last") == 0
    report = json.loads((run_dir / "report.json").read_text())
    expected = dict(_numbers({k: reference[k] for k in ("n", "overall", "groups", "gaps", "meta")}))
    got = dict(_numbers({k: report[k] for k in ("n", "overall", "groups", "gaps", "meta")}))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    assert report["meta"]["best_checkpoint"] == reference["meta"]["best_checkpoint"]
    # exactly one row per logged step, and the same values as the uninterrupted run
    rows, expected_rows = _metrics_rows(run_dir), _metrics_rows(uninterrupted)
    assert len(rows) == len(expected_rows)
    for row, expected_row in zip(rows, expected_rows):
        assert row.keys() == expected_row.keys()
        for key, value in expected_row.items():
            if value:
                assert float(row[key]) == pytest.approx(float(value), abs=1e-6), (row["step"], key)
            else:
                assert not row[key], (row["step"], key)
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert not leftovers  # a half-written checkpoint's temporary file is cleared on resume
    embeddings = np.load(run_dir / "embeddings_test.npz")["embeddings"]
    assert np.allclose(embeddings, np.load(uninterrupted / "embeddings_test.npz")["embeddings"], atol=1e-6)
