"""Local sweeps: Hydra's grid grammar, one `fairdml train` process per run, summary and trade-off plot."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers.tiny import TINY_OVERRIDES

from fairdml.cli import main
from fairdml.reports.runs import load_run
from fairdml.sweep import expand_sweep, run_local_sweep

# No PARADE here: the sweep machinery is under test, and a tiny run without it takes seconds.
FAST = [
    *TINY_OVERRIDES,
    "trainer.limit_train_batches=2",
    "evaluation.leakage=true",
    "evaluation.model_card=false",
]


def test_expand_sweep_follows_hydra_grammar():
    jobs, swept = expand_sweep(["a=1,2", "b=range(0,2)", "c=x", "d=choice(p,q)"])
    assert swept == ["a", "b", "d"]
    assert len(jobs) == 8
    assert jobs[0] == ["a=1", "b=0", "c=x", "d=p"] and jobs[-1] == ["a=2", "b=1", "c=x", "d=q"]
    assert {tuple(job) for job in jobs} == {
        (f"a={a}", f"b={b}", "c=x", f"d={d}") for a in (1, 2) for b in (0, 1) for d in "pq"
    }
    jobs, swept = expand_sweep(["data.split={train:0.5,val:0.3,test:0.2}", "seed=0"])
    assert swept == [] and jobs == [["data.split={train:0.5,val:0.3,test:0.2}", "seed=0"]]
    with pytest.raises(ValueError, match="bad sweep override"):
        expand_sweep(["a=range(x)"])


def test_sweep_checks_every_config_before_running(tmp_path):
    with pytest.raises(ValueError, match="trainer.max_epoch"):
        run_local_sweep(["seed=0,1", "trainer.max_epoch=1,2"], sweep_dir=str(tmp_path / "sweep"))
    with pytest.raises(ValueError, match="run_dir"):
        run_local_sweep(["seed=0,1", f"run_dir={tmp_path}"], sweep_dir=str(tmp_path / "sweep"))
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_two_by_two_sweep_writes_summary_and_tradeoff(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    main(["train", "-m", "--sweep-dir", str(sweep), *FAST, "optim.lr=0.001,0.003", "seed=0,1"])
    printed = capsys.readouterr().out
    runs = sorted(path for path in sweep.iterdir() if path.is_dir())
    assert [path.name for path in runs] == ["000", "001", "002", "003"]
    for path in runs:
        assert (path / "config.yaml").is_file() and (path / "report.json").is_file()
    assert [(load_run(path).flat_config["optim.lr"], load_run(path).seed) for path in runs] == [
        (0.001, 0), (0.001, 1), (0.003, 0), (0.003, 1)
    ]  # fmt: skip

    with open(sweep / "summary.csv", newline="") as file:
        summary = list(csv.DictReader(file))
    assert [row["status"] for row in summary] == ["finished"] * 4
    for row, path in zip(summary, runs):
        report = json.loads((path / "report.json").read_text())
        assert float(row["recall@1"]) == pytest.approx(report["overall"]["recall@1"])
        assert float(row["recall@1_gap"]) == pytest.approx(report["gaps"]["recall@1"]["max_minus_min"])
        assert float(row["attribute_leakage"]) == pytest.approx(report["overall"]["attribute_leakage"])
    assert (sweep / "summary.md").read_text().startswith("| run | status | optim.lr | seed |")
    assert "| run | status | optim.lr | seed |" in printed

    # compare: one row per learning rate, mean and std over the two seeds
    with open(sweep / "compare.csv", newline="") as file:
        settings = list(csv.DictReader(file))
    assert [(float(row["optim.lr"]), int(row["seeds"])) for row in settings] == [(0.001, 2), (0.003, 2)]
    for row, pair in zip(settings, (runs[:2], runs[2:])):
        values = [json.loads((path / "report.json").read_text())["overall"]["recall@1"] for path in pair]
        assert float(row["recall@1_mean"]) == pytest.approx(np.mean(values))
        assert float(row["recall@1_std"]) == pytest.approx(np.std(values, ddof=1))
    assert any(row["pareto_gap"] == "True" for row in settings)
    assert (sweep / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sweep / "tradeoff.html").stat().st_size > 100_000  # plotly.js is inside


@pytest.mark.slow
def test_a_failing_run_is_recorded_and_a_rerun_skips_finished_runs(tmp_path):
    sweep = tmp_path / "sweep"
    run_local_sweep([*FAST, "data.sensitive_attribute=no_such_attribute,style"], sweep_dir=str(sweep))
    manifest = json.loads((sweep / "sweep.json").read_text())
    failed, finished = manifest["runs"]
    assert failed["status"] == "failed" and failed["returncode"] != 0
    assert "no_such_attribute" in failed["error"]
    assert finished["status"] == "finished" and (sweep / "001" / "report.json").is_file()
    with open(sweep / "summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["status"], row["recall@1"] == "") for row in rows] == [("failed", True), ("finished", False)]
    assert (sweep / "tradeoff.png").is_file()

    # the same command again: the finished run is kept as it is, the failed one is tried again
    log_times = [(sweep / name / "train.log").stat().st_mtime_ns for name in ("000", "001")]
    run_local_sweep([*FAST, "data.sensitive_attribute=no_such_attribute,style"], sweep_dir=str(sweep))
    again = json.loads((sweep / "sweep.json").read_text())["runs"]
    assert again[1] == finished and (sweep / "001" / "train.log").stat().st_mtime_ns == log_times[1]
    assert again[0]["status"] == "failed" and (sweep / "000" / "train.log").stat().st_mtime_ns > log_times[0]


@pytest.mark.slow
def test_another_grid_in_a_sweep_folder_keeps_the_finished_runs(tmp_path, capsys):
    """`-m seed=0,1` then `-m seed=0,2` in the same folder once deleted the finished seed=1 run: now the second
    grid is refused with the folder untouched, the first grid again reuses its runs, and --overwrite clears."""
    sweep = tmp_path / "sweep"
    run_local_sweep([*FAST, "seed=0,1"], sweep_dir=str(sweep))
    report = (sweep / "001" / "report.json").read_bytes()
    manifest = (sweep / "sweep.json").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "-m", *FAST, "seed=0,2", "--sweep-dir", str(sweep)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "holds another grid" in err and "2 finished runs" in err and "--overwrite" in err
    assert (sweep / "001" / "report.json").read_bytes() == report and (sweep / "sweep.json").read_bytes() == manifest
    run_local_sweep([*FAST, "seed=0,1"], sweep_dir=str(sweep))  # the same grid: both runs kept as they are
    assert (sweep / "001" / "report.json").read_bytes() == report
    run_local_sweep([*FAST, "seed=0,2"], sweep_dir=str(sweep), overwrite=True)
    assert json.loads((sweep / "001" / "report.json").read_text())["meta"]["seed"] == 2
    assert [r["overrides"][-1] for r in json.loads((sweep / "sweep.json").read_text())["runs"]] == ["seed=0", "seed=2"]


@pytest.mark.slow
def test_a_killed_sweep_takes_its_running_child_with_it(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "fairdml", "train", "-m", *FAST, "trainer.max_epochs=5000", "seed=0,1"]
    parent = subprocess.Popen([*command, "--sweep-dir", str(sweep)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    children: list = []
    while time.monotonic() < deadline and not children:
        time.sleep(0.5)
        children = psutil.Process(parent.pid).children()
    assert children, "the sweep started no run"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, "the run went on training as an orphan"
