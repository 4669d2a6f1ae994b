"""Off the straight path, nothing is lost and nothing is mixed (issue 26): overwrite keeps what fairdml did not
write, a resume is the same run or is refused before any write, a moved run resumes exactly, a checkpoint of
another run starts a new run only when named `init_from`."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.cli import cli_error

from fairdml.cli import main
from fairdml.config import compose_config
from fairdml.train import run_training

FAST = ["evaluation.model_card=false", "trainer.log_every_n_steps=1"]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` and a hash of its bytes: what 'nothing was written' compares."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[list[str], Path]:
    """A finished 2-epoch run, shared read-only by the tests (each copies it before changing anything)."""
    base = tmp_path_factory.mktemp("finished")
    from helpers.tiny import TINY_OVERRIDES

    overrides = [*TINY_OVERRIDES, *FAST, f"output_dir={base / 'outputs'}", "trainer.max_epochs=2"]
    run_dir = run_training(compose_config([*overrides, f"run_dir={base / 'run'}"]))
    return overrides, run_dir


def _copy(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    return to


# -- overwrite ---------------------------------------------------------------------------------------------------
def test_overwrite_keeps_a_project_folder_that_has_a_config_yaml(tiny_overrides, tmp_path, capsys):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "config.yaml").write_text("mine: true\n")
    (project / "src" / "model.py").write_text("print('keep me')\n")
    (project / "csv").mkdir()
    before = _snapshot(project)
    err = cli_error(capsys, ["train", *tiny_overrides, *FAST, f"run_dir={project}", "overwrite=true"])
    assert "has no .fairdml-run file" in err and "not a folder a fairdml run made" in err
    assert _snapshot(project) == before


def test_overwrite_clears_only_what_the_run_wrote(finished, tmp_path, capsys):
    overrides, source = finished
    run_dir = _copy(source, tmp_path / "run")
    (run_dir / "notes.txt").write_text("my notes on this run\n")
    run_training(compose_config([*overrides, f"run_dir={run_dir}", "overwrite=true", "seed=1"]))
    assert (run_dir / "notes.txt").read_text() == "my notes on this run\n"
    assert "kept" in capsys.readouterr().out
    assert json.loads((run_dir / "report.json").read_text())["meta"]["seed"] == 1
    assert not [p.name for p in (run_dir / "checkpoints").iterdir() if "-v" in p.name]  # no copies beside old ones
    assert [int(r["epoch"]) for r in _rows(run_dir) if r.get("val/recall_at_1")] == [0, 1]  # no old rows appended


# -- resume: the same run, or refused before any write ----------------------------------------------------------
def test_resume_with_changed_settings_is_refused_before_any_write(finished, tmp_path, capsys):
    overrides, source = finished
    run_dir = _copy(source, tmp_path / "run")
    before = _snapshot(run_dir)
    argv = ["train", *overrides, f"run_dir={run_dir}", "resume=last", "optim.lr=0.01", "data.minority_share=0.5"]
    err = cli_error(capsys, argv)
    assert "data.minority_share, optim.lr" in err and "init_from=" in err
    assert _snapshot(run_dir) == before  # config.yaml, metrics.csv and every checkpoint untouched


@pytest.mark.parametrize("target", ["new", "finished", "own_seed"])
def test_a_checkpoint_of_another_run_is_refused_unless_named_init_from(finished, tmp_path, capsys, target):
    overrides, source = finished
    other = source / "checkpoints" / "last.ckpt"
    run_dir = tmp_path / "target"
    if target != "new":  # a finished run's copy: another run ("finished") or the same run id ("own_seed")
        run_dir = _copy(source, run_dir)
        if target == "finished":
            (run_dir / ".fairdml-run").write_text(json.dumps({"run_id": "another"}))
    before = _snapshot(run_dir) if run_dir.exists() else None
    err = cli_error(capsys, ["train", *overrides, f"run_dir={run_dir}", f"resume={other}"])
    assert "is not a checkpoint of run_dir" in err and f"init_from={other}" in err
    assert (_snapshot(run_dir) if run_dir.exists() else None) == before  # nothing written, not even a folder
    if target == "finished":  # copied checkpoints of another run inside this folder: refused by the run id
        err = cli_error(capsys, ["train", *overrides, f"run_dir={run_dir}", "resume=last"])
        assert "was written by run" in err and _snapshot(run_dir) == before


def test_init_from_starts_a_new_run_from_the_weights(finished, tmp_path, capsys):
    overrides, source = finished
    run_dir = tmp_path / "new"
    other = source / "checkpoints" / "last.ckpt"
    run_training(compose_config([*overrides, f"run_dir={run_dir}", f"init_from={other}", "trainer.max_epochs=1"]))
    assert "weights loaded; this is a new run" in capsys.readouterr().out
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["epoch"] == 0  # its own epochs, optimiser and selection
    report = json.loads((run_dir / "report.json").read_text())
    assert report["meta"]["best_checkpoint"] == "checkpoints/best-000.ckpt"
    err = cli_error(capsys, ["train", *overrides, f"run_dir={tmp_path / 'x'}", "init_from=/nowhere/last.ckpt"])
    assert "/nowhere/last.ckpt" in err


def test_resume_of_a_run_killed_before_its_first_checkpoint_says_overwrite(finished, tmp_path, capsys):
    overrides, source = finished
    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    shutil.copy(source / "config.yaml", run_dir / "config.yaml")
    shutil.copy(source / ".fairdml-run", run_dir / ".fairdml-run")
    err = cli_error(capsys, ["train", *overrides, f"run_dir={run_dir}", "resume=last"])
    assert "overwrite=true" in err


# -- a moved run resumes exactly (slow: three `fairdml train` processes, one killed) ------------------------------
@pytest.mark.slow
def test_a_moved_run_resumes_to_the_uninterrupted_report(tmp_path):
    """The selected checkpoint is an early one (the *highest* training loss, epoch 0), so a resume that forgot
    it, or deleted it as an orphan (both happened when the folder had moved), selects another epoch."""
    from test_faults import KILL_OVERRIDES, _numbers, _train_in_subprocess

    early_best = ["checkpoint.monitor=train/loss", "checkpoint.mode=max"]
    reference = tmp_path / "reference"
    assert _train_in_subprocess("none", reference, *early_best) == 0
    killed = tmp_path / "killed"
    assert _train_in_subprocess("train:2:1", killed, *early_best) == -9
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(killed, moved)
    assert _train_in_subprocess("none", moved, *early_best, "resume=last") == 0
    expected, got = (json.loads((p / "report.json").read_text()) for p in (reference, moved))
    assert expected["meta"]["best_checkpoint"] == "checkpoints/best-000.ckpt"
    keys = ("n", "overall", "groups", "gaps", "meta")
    assert dict(_numbers({k: got[k] for k in keys})) == dict(_numbers({k: expected[k] for k in keys}))
    assert got["meta"]["best_checkpoint"] == expected["meta"]["best_checkpoint"]
    assert sorted(p.name for p in (moved / "checkpoints").iterdir()) == sorted(
        p.name for p in (reference / "checkpoints").iterdir()
    )
    assert len(_rows(moved)) == len(_rows(reference))
    assert KILL_OVERRIDES  # the same settings as the other kill-and-resume tests


@pytest.mark.parametrize("content", [b"this is not a checkpoint\n", bytes(range(256)) * 4])
def test_garbage_in_place_of_a_checkpoint_is_named_in_one_line(finished, tmp_path, capsys, content):
    """Once `error: 101` or torch's advice to load with weights_only=False."""
    overrides, source = finished
    run_dir = _copy(source, tmp_path / "run")
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(content)
    err = cli_error(capsys, ["train", *overrides, f"run_dir={run_dir}", "resume=last"])
    assert "last.ckpt is not a checkpoint: not a file torch.save writes" in err and "weights_only" not in err


# -- what used to fail late, or as a traceback: one line, before any work -------------------------------------------
def test_bad_card_inputs_fail_before_training(tiny_overrides, tmp_path, capsys):
    bad = tmp_path / "card.yaml"
    bad.write_text("intended_use: [unclosed\n")
    run_dir = tmp_path / "run"
    argv = ["train", *tiny_overrides, f"run_dir={run_dir}", f"evaluation.card_inputs={bad}"]
    err = cli_error(capsys, argv)
    assert f"{bad}:2:1: not valid YAML" in err
    assert not run_dir.exists()  # failed before the folder was made, not after training


def test_a_malformed_config_file_is_one_line(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "configs"
    monkeypatch.setenv("FAIRDML_CONFIG_DIR", str(folder))  # --config-dir sets it for the process: undone after
    main(["init-config", str(folder)])
    with open(folder / "trainer" / "cpu.yaml", "a") as file:
        file.write("max_epochs: [1\n")
    err = cli_error(capsys, ["train", "--config-dir", str(folder), f"run_dir={tmp_path / 'run'}"])
    assert "cpu.yaml:" in err and "not valid YAML" in err


def test_a_missing_image_fails_at_once_naming_it(tmp_path, capsys):
    from helpers.fixtures_datasets import write_two_attribute_celeba

    root = tmp_path / "celeba"
    write_two_attribute_celeba(root)
    (root / "img_align_celeba" / "000123.jpg").unlink()  # one the data card's sample may well miss
    argv = [
        "train", "model=tiny", "data=celeba", f"data.root={root}", "data.options.sensitive_attributes=[Male]",
        "data.image_size=32", "data.minority_share=null", f"run_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    err = cli_error(capsys, argv)
    assert "1 of the 288 listed images are missing" in err and "000123.jpg" in err and "skip_bad_files" in err
    assert not (tmp_path / "run").exists()


def test_a_monitored_group_absent_from_validation_is_refused(tiny_overrides):
    from types import SimpleNamespace

    from fairdml.train import check_before_training

    cfg = compose_config([*tiny_overrides, "checkpoint.monitor='val_groups/recall_at_1/minority'"])
    view = SimpleNamespace(attribute_column=lambda name: np.zeros(10, dtype=np.int64))  # majority only
    datamodule = SimpleNamespace(views={"val": view}, group_attribute="style", group_names=["majority", "minority"])
    with pytest.raises(ValueError, match=r"validation split has no sample of group 'minority' \(it has \['majority'\]"):
        check_before_training(cfg, datamodule)


def test_datacard_into_a_file_fails_before_decoding(tmp_path, capsys, monkeypatch):
    import fairdml.data.datamodule as datamodule

    target = tmp_path / "a_file"
    target.write_text("x")
    monkeypatch.setattr(datamodule.DMLDataModule, "setup", lambda *a, **k: pytest.fail("decoded anyway"))
    err = cli_error(capsys, ["datacard", "--out", str(target / "card")])
    assert "is a file" in err


def test_zero_dimensional_embeddings_are_named(tmp_path):
    from fairdml.metrics.functional.report import fairness_report

    with pytest.raises(ValueError, match=r"no dimensions \(shape \(4, 0\)\)"):
        fairness_report(np.zeros((4, 0)), np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))


def test_truncated_run_files_are_named(finished, tmp_path, capsys):
    overrides, source = finished
    run_dir = _copy(source, tmp_path / "run")
    (run_dir / "selection.json").write_text('{"checkpoint": "checkpoints/best')
    err = cli_error(capsys, ["export", str(run_dir), "--out", str(tmp_path / "m.pt")])
    assert "selection.json:1: not readable selection" in err


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_no_half_file(tiny_overrides, tmp_path, capsys):
    """A tmpfs of 1.5 MB: the first checkpoint does not fit (once a `basic_ios::clear` traceback)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500K", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the full-disk path is untested on this machine")
    try:
        err = cli_error(capsys, ["train", *tiny_overrides, *FAST, f"run_dir={disk / 'run'}"])
        assert "no space left on the device of" in err and ".ckpt" in err
        assert not [p for p in (disk / "run").rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("lr", ["1e5", "1e6"])
def test_a_diverging_run_names_the_cause_not_the_input(tiny_overrides, tmp_path, capsys, lr):
    """Once a crash inside the miner, or "embeddings contain NaN" as if the data were at fault."""
    argv = ["train", *tiny_overrides, *FAST, "trainer.max_epochs=2", f"optim.lr={lr}", f"optim.backbone_lr={lr}"]
    err = cli_error(capsys, [*argv, f"run_dir={tmp_path / 'run'}"])
    assert "training diverged" in err and "lower the learning rates" in err and "global step" in err


def test_a_run_whose_closing_set_fails_keeps_the_earlier_set_whole(finished, tmp_path, capsys, monkeypatch):
    """Resuming a finished run for more epochs, the card hits a full disk: report.json, embeddings, model.pt
    and the card stay the earlier ones together (never a new report beside the old card)."""
    import errno

    import fairdml.reports.card.write as card_write

    overrides, source = finished
    run_dir = _copy(source, tmp_path / "run")
    closing = ("report.json", "report.csv", "embeddings_test.npz", "model.pt")
    before = {name: (run_dir / name).read_bytes() for name in closing}

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(card_write, "write_model_card", full_disk)
    more = ["resume=last", "trainer.max_epochs=3", "evaluation.model_card=true"]
    argv = ["train", *overrides, f"run_dir={run_dir}", *more]
    err = cli_error(capsys, argv)
    assert "No space left on device" in err
    assert {name: (run_dir / name).read_bytes() for name in closing} == before
    assert not (run_dir / ".fairdml-staging").exists()
