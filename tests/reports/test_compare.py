"""`fairdml compare`: grouping by setting, mean/std over seeds, the Pareto front, PNG + offline HTML, W&B."""

from __future__ import annotations

import csv
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from fairdml.cli import main
from fairdml.mitigations.parade import Parade
from fairdml.reports.compare import run_compare
from fairdml.reports.runs import find_runs, varying_keys
from fairdml.reports.tradeoff import distinguishing_keys, pareto_front

# strength -> (Recall@1, Recall@1 gap, leakage) before seed noise: 2 is dominated by 1 on both fronts
SETTINGS = {
    0.0: (0.60, 0.20, 0.90),
    1.0: (0.58, 0.10, 0.70),
    2.0: (0.55, 0.12, 0.75),
    4.0: (0.50, 0.05, 0.60),
}
SEEDS = (0, 1, 2)


def _report(recall: float, gap: float, leakage: float) -> dict:
    groups = {"majority": recall + gap / 2, "minority": recall - gap / 2}
    return {
        "n": 100,
        "overall": {"recall@1": recall, "map@r": recall / 2, "attribute_leakage": leakage},
        "groups": {name: {"n": 50, "recall@1": value} for name, value in groups.items()},
        "gaps": {"recall@1": {"max_minus_min": gap, "min_over_max": groups["minority"] / groups["majority"],
                              "worst_group": "minority"}},
    }  # fmt: skip


def _write_run(folder: Path, strength: float, seed: int, figures: tuple[float, float, float]) -> None:
    folder.mkdir(parents=True)
    config = {
        "seed": seed,
        "run_dir": str(folder),
        "callbacks": {"parade": {"_target_": "fairdml.mitigations.parade.Parade", "strength": strength}},
        "data": {"options": {"seed": seed}},
        "logger": {"wandb": {"mode": "offline", "project": "t"}},
    }
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    (folder / "report.json").write_text(json.dumps(_report(*figures)))


@pytest.fixture
def sweep_dir(tmp_path) -> tuple[Path, dict]:
    """Twelve finished runs (4 strengths x 3 seeds) with seed noise, plus things that are not runs."""
    rng = np.random.default_rng(0)
    values: dict = {}
    index = 0
    for strength, base in SETTINGS.items():
        for seed in SEEDS:
            figures = tuple(float(value + rng.normal(0, 0.005)) for value in base)
            values.setdefault(strength, []).append(figures)
            _write_run(tmp_path / "sweep" / f"{index:03d}", strength, seed, figures)
            index += 1
    (tmp_path / "sweep" / "999").mkdir()  # a run that failed: no report.json
    (tmp_path / "sweep" / "999" / "config.yaml").write_text("seed: 0\n")
    copy = tmp_path / "sweep" / "000" / "wandb" / "offline-run-x" / "files"  # W&B's own copies
    copy.mkdir(parents=True)
    for name in ("config.yaml", "report.json"):
        (copy / name).write_text((tmp_path / "sweep" / "000" / name).read_text())
    return tmp_path / "sweep", values


def test_pareto_front_matches_the_definition():
    rng = np.random.default_rng(1)
    for size in (1, 2, 7, 40):
        up, down = rng.random(size).round(1), rng.random(size).round(1)  # rounding makes ties
        mask = pareto_front(up, down)
        for i in range(size):
            dominated = any(
                up[j] >= up[i] and down[j] <= down[i] and (up[j] > up[i] or down[j] < down[i]) for j in range(size)
            )
            assert mask[i] == (not dominated)
    assert pareto_front([0.6, 0.58, 0.55, 0.5], [0.2, 0.1, 0.12, 0.05]).tolist() == [True, True, False, True]


def test_runs_are_found_and_settings_exclude_seeds_and_paths(sweep_dir):
    folder, _ = sweep_dir
    runs = find_runs([folder])
    assert len(runs) == 12  # not the failed run, not W&B's copies
    assert varying_keys([run.flat_config for run in runs]) == ["callbacks.parade.strength"]


def test_a_key_an_older_run_lacks_counts_as_its_default(tmp_path):
    """Runs made before a config key (or a callback argument) existed group with newer runs that have its
    default value."""
    default = inspect.signature(Parade).parameters["encoder_objective"].default

    _write_run(tmp_path / "old", 4.0, 0, (0.5, 0.1, 0.9))
    _write_run(tmp_path / "new", 4.0, 1, (0.5, 0.1, 0.9))
    _write_run(tmp_path / "other", 4.0, 2, (0.5, 0.1, 0.9))
    for name, objective in (("new", default), ("other", "covariance")):
        config = OmegaConf.load(tmp_path / name / "config.yaml")
        config.callbacks.parade.encoder_objective = objective
        OmegaConf.save(config, tmp_path / name / "config.yaml")
    runs = {run.path.name: run for run in find_runs([tmp_path])}
    assert runs["old"].flat_config["callbacks.parade.encoder_objective"] == default
    assert varying_keys([runs["old"].flat_config, runs["new"].flat_config]) == []
    assert varying_keys([run.flat_config for run in runs.values()]) == ["callbacks.parade.encoder_objective"]


def test_labels_use_the_fewest_keys_that_tell_settings_apart():
    # the loss and its margin change together with the experiment; strength varies within one experiment
    configs = [
        {"experiment": "baseline", "loss": "margin", "margin": 0.2, "strength": 4.0},
        {"experiment": "parade", "loss": "contrastive", "margin": None, "strength": 0.0},
        {"experiment": "parade", "loss": "contrastive", "margin": None, "strength": 1.0},
        {"experiment": "parade", "loss": "contrastive", "margin": None, "strength": 4},  # shows as 4.0 does
    ]
    keys = ["experiment", "loss", "margin", "strength"]
    assert distinguishing_keys(configs, keys) == ["experiment", "strength"]
    assert distinguishing_keys(configs[1:], keys) == ["strength"]
    assert distinguishing_keys(configs[:1], keys) == []


def test_compare_writes_table_png_and_offline_html(sweep_dir, capsys):
    folder, values = sweep_dir
    main(["compare", str(folder), "--out", str(folder / "cmp")])
    printed = capsys.readouterr().out
    with open(folder / "cmp" / "compare.csv", newline="") as file:
        rows = {float(row["callbacks.parade.strength"]): row for row in csv.DictReader(file)}
    assert sorted(rows) == sorted(SETTINGS)
    for strength, figures in values.items():
        recall, gap, leakage = np.array(figures).T
        row = rows[strength]
        assert int(row["seeds"]) == len(SEEDS)
        assert float(row["recall@1_mean"]) == pytest.approx(recall.mean())
        assert float(row["recall@1_std"]) == pytest.approx(recall.std(ddof=1))
        assert float(row["recall@1_gap_mean"]) == pytest.approx(gap.mean())
        assert float(row["attribute_leakage_std"]) == pytest.approx(leakage.std(ddof=1))
        assert float(row["recall@1_worst_mean"]) == pytest.approx((recall - gap / 2).mean())
    assert {s: rows[s]["pareto_gap"] for s in rows} == {0.0: "True", 1.0: "True", 2.0: "False", 4.0: "True"}
    assert {s: rows[s]["pareto_leakage"] for s in rows} == {
        0.0: "True",
        1.0: "True",
        2.0: "False",
        4.0: "True",
    }
    assert "| callbacks.parade.strength | seeds | recall@1_mean |" in printed
    # the failed run is named, with why; W&B's copies are not runs and are not named
    assert f"left out {folder / '999'}: no report.json: the run did not finish" in printed
    assert printed.count("left out") == 1

    assert (folder / "cmp" / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (folder / "cmp" / "tradeoff.html").read_text(encoding="utf-8")
    assert "Plotly.newPlot" in page and "callbacks.parade.strength=2" in page
    # self-contained: no script, stylesheet or image is fetched from anywhere
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=[\"']?https?:", page)
    assert not re.search(r"<img[^>]+src=[\"']?https?:", page)


def test_compare_without_finished_runs_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished run"):
        run_compare([str(tmp_path)])


def test_compare_logs_to_wandb_when_asked(sweep_dir):
    from helpers.wandb_files import read_offline_run

    folder, _ = sweep_dir
    written = run_compare([str(folder)], str(folder / "cmp"), wandb="offline")
    run = read_offline_run(written["png"].parent / "wandb")
    (row,) = [row for row in run["history"] if "tradeoff._type" in row]
    assert row["tradeoff._type"] == "image-file"
    assert row["settings._type"] == "table-file" and row["settings.nrows"] == len(SETTINGS)
    assert row["tradeoff_interactive._type"] == "html-file"
