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
from fairdml.utils import processes

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


def test_jobs_below_one_is_a_one_line_error(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "-m", "seed=0,1", "--jobs", "0", "--sweep-dir", str(sweep)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--jobs" in err and "1 or more, got 0" in err, err
    assert not sweep.exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "seed=0", "--jobs", "2"])
    assert exit_info.value.code == 2 and "--jobs goes with -m" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("cores", "jobs", "environ", "threads"),
    [
        (2, 2, {}, "1"),  # 2 jobs x 1 thread on 2 cores
        (2, 3, {}, "1"),  # more jobs than cores: still one thread each
        (8, 2, {}, "4"),
        (16, 3, {}, "5"),
        (2, 2, {"OMP_NUM_THREADS": "3"}, "3"),  # the user's choice wins, for both variables
        (2, 2, {"MKL_NUM_THREADS": "2"}, "2"),
        (8, 1, {"OMP_NUM_THREADS": "4"}, "4"),
    ],
)
def test_thread_budget_shares_the_cores_unless_the_user_chose(monkeypatch, cores, jobs, environ, threads):
    monkeypatch.setattr(processes, "cores", lambda: cores)
    assert processes.thread_budget(jobs, environ) == {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    assert processes.thread_budget(2, {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "5"}) == {
        "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "5"
    }  # fmt: skip
    assert processes.thread_budget(1, {}) == {}  # one at a time: torch and Lightning choose, as before


def test_stopping_a_sweep_terminates_every_running_child():
    import signal
    import sys

    children = processes.Children()
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    running = [children.start(sleep) for _ in range(2)]
    children.stop_all(grace_seconds=10)
    assert [process.returncode for process in running] == [-signal.SIGTERM] * 2
    assert children.start(sleep) is None  # none starts once the sweep stops


# Three runs, the middle one failing when it builds its data (after every config composed fine); no leakage
# probe or card, as the runs' own work is not under test.
GRID = [*TINY_OVERRIDES, "trainer.limit_train_batches=2", "evaluation.model_card=false"]
GRID += ["data.options.minority_style=global,no_such_style,strokes"]


def _intervals(manifest: dict) -> list[tuple[str, str]]:
    return [(record["started"], record["ended"]) for record in manifest["runs"]]


def _most_at_once(intervals: list[tuple[str, str]]) -> int:
    """The most runs training at one time: ISO times of one clock compare as strings."""
    return max(sum(start <= moment < end for start, end in intervals) for moment, _ in intervals)


@pytest.mark.slow
def test_two_jobs_give_the_sweep_of_one_job(tmp_path, monkeypatch, capsys):
    """The same grid one and two at a time: the same records and summary (both runs with one thread each, so the
    figures match exactly), two runs really train at once and never three, the failed run stops nothing, and a
    re-run with yet another --jobs retries only the failed run."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's choice: kept as it is
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    one = run_local_sweep(GRID, sweep_dir=str(tmp_path / "one"), jobs=1)
    monkeypatch.delenv("OMP_NUM_THREADS")  # now the sweep chooses: 2 cores // 2 jobs
    monkeypatch.setattr(processes, "cores", lambda: 2)
    capsys.readouterr()
    two = run_local_sweep(GRID, sweep_dir=str(tmp_path / "two"), jobs=2)
    printed = capsys.readouterr().out
    assert "3 runs over data.options.minority_style" in printed and "2 at a time" in printed
    assert "[2/3] data.options.minority_style=no_such_style: failed in" in printed
    assert "[3/3] data.options.minority_style=strokes: finished in" in printed

    manifests = [json.loads((folder / "sweep.json").read_text()) for folder in (one, two)]
    assert [manifest["jobs"] for manifest in manifests] == [1, 2]
    for manifest in manifests:
        assert [record["status"] for record in manifest["runs"]] == ["finished", "failed", "finished"]
        assert "no_such_style" in manifest["runs"][1].pop("error")
        assert all(record["threads"] == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} for record in manifest["runs"])
    timing = ("seconds", "started", "ended")
    records = [[{k: v for k, v in r.items() if k not in timing} for r in m["runs"]] for m in manifests]
    assert records[0] == records[1]
    assert [_most_at_once(_intervals(manifest)) for manifest in manifests] == [1, 2]
    assert (one / "summary.csv").read_text() == (two / "summary.csv").read_text()
    assert (one / "summary.md").read_text() == (two / "summary.md").read_text()
    assert (one / "compare.csv").read_text() == (two / "compare.csv").read_text()
    assert (two / "tradeoff.png").is_file()

    before = json.loads((two / "sweep.json").read_text())["runs"]
    log_times = [(two / name / "train.log").stat().st_mtime_ns for name in ("000", "001", "002")]
    run_local_sweep(GRID, sweep_dir=str(two), jobs=3)  # more jobs than runs is fine
    again = json.loads((two / "sweep.json").read_text())["runs"]
    assert [again[0], again[2]] == [before[0], before[2]]
    assert [(two / name / "train.log").stat().st_mtime_ns for name in ("000", "002")] == log_times[::2]
    assert (two / "001" / "train.log").stat().st_mtime_ns > log_times[1] and again[1]["status"] == "failed"


@pytest.mark.slow
def test_ctrl_c_stops_every_running_run(tmp_path):
    """SIGINT to the sweep alone (its runs do not get it): the sweep terminates both runs and exits, instead of
    waiting for them, and records neither (a re-run runs them again)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "fairdml", "train", "-m", *FAST, "trainer.max_epochs=5000", "seed=0,1,2"]
    parent = subprocess.Popen(
        [*command, "--jobs", "2", "--sweep-dir", str(sweep)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    children: list = []
    while time.monotonic() < deadline and len(children) < 2:
        time.sleep(0.5)
        children = psutil.Process(parent.pid).children()
    assert len(children) == 2, f"the sweep started {len(children)} runs at once, not 2"
    os.kill(parent.pid, signal.SIGINT)
    parent.wait(timeout=60)  # without the stop, the pool's threads would wait for 5000 epochs
    assert parent.returncode != 0
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, "a run went on training"
    assert not (sweep / "sweep.json").exists()
