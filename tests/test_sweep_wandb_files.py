"""The W&B sweep files in configs/sweep/: valid for `wandb sweep`, and each agent command is a `fairdml train`
whose overrides compose into the config with the swept values."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args, load_sweep_config

from fairdml.callbacks.selection import validation_keys
from fairdml.cli import build_parser
from fairdml.config import compose_config
from fairdml.sweep import expand_sweep, sweep_file_overrides

SWEEP_FILES = sorted((Path(__file__).resolve().parents[1] / "configs" / "sweep").glob("*.yaml"))


def _parameter_sets(config: dict, count: int = 4) -> list[dict]:
    """Parameter sets as W&B's sweep engine proposes them (package `sweeps`, when installed), else the
    grid's product / each distribution's bounds."""
    try:
        import sweeps
    except ImportError:
        sweeps = None
    if sweeps is not None:
        proposed: list = []
        for _ in range(count if config["method"] != "grid" else 10_000):
            run = sweeps.next_run(config, proposed)
            if run is None:
                break
            run.state = sweeps.RunState.finished
            proposed.append(run)
        return [{key: value["value"] for key, value in run.config.items()} for run in proposed]
    choices = {}
    for key, spec in config["parameters"].items():
        choices[key] = spec.get("values") or ([spec["value"]] if "value" in spec else [spec["min"], spec["max"]])
    return [dict(zip(choices, values)) for values in itertools.product(*choices.values())]


def _agent_command(config: dict, parameters: dict) -> list[str]:
    """The command line `wandb agent` runs: the file's `command` with wandb's own macro values (as
    wandb_agent.Agent._command_run substitutes them)."""
    macros = create_sweep_command_args({"args": {key: {"value": value} for key, value in parameters.items()}})
    macros["env"] = ["/usr/bin/env"]
    command: list[str] = []
    for part in map(str, config["command"]):
        command += macros.get(part[2:-1], []) if part.startswith("${") and part.endswith("}") else [part]
    return command


def test_there_are_grid_and_bayes_sweep_files():
    methods = {load_sweep_config(str(path))["method"] for path in SWEEP_FILES}
    assert {"grid", "bayes"} <= methods


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.name)
def test_sweep_file_is_valid_for_wandb(path):
    config = load_sweep_config(str(path))  # what `wandb sweep FILE` reads
    assert config is not None
    assert config["method"] in ("grid", "random", "bayes")
    assert config["metric"]["goal"] in ("maximize", "minimize")
    assert config["metric"]["name"] in validation_keys([1, 2, 4, 8], ["majority", "minority"], leakage=False)
    sweeps = pytest.importorskip("sweeps", reason="W&B's sweep engine (pip install sweeps) checks the schema")
    assert sweeps.schema_violations_from_proposed_config(config) == []


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.name)
def test_agent_command_is_fairdml_train_with_the_swept_keys(path):
    config = load_sweep_config(str(path))
    parameter_sets = _parameter_sets(config)
    assert parameter_sets
    for parameters in parameter_sets:
        command = _agent_command(config, parameters)
        assert command[:3] == ["/usr/bin/env", "fairdml", "train"]
        args = build_parser().parse_args(command[2:])
        assert args.command == "train" and not args.multirun
        for key, value in parameters.items():
            assert f"{key}={value}" in args.overrides
        cfg = compose_config(args.overrides)
        for key, value in parameters.items():
            assert OmegaConf.select(cfg, key) == pytest.approx(value), key
        assert cfg.logger.wandb.mode == "online" and "parade" in cfg.callbacks


def test_grid_file_runs_locally_as_the_same_grid():
    (grid,) = [path for path in SWEEP_FILES if load_sweep_config(str(path))["method"] == "grid"]
    config = load_sweep_config(str(grid))
    jobs, swept = expand_sweep(sweep_file_overrides(grid))
    assert set(swept) == set(config["parameters"])
    local = [compose_config(job) for job in jobs]
    expected = {tuple(sorted(p.items())) for p in _parameter_sets(config)}
    assert {tuple(sorted((key, OmegaConf.select(cfg, key)) for key in swept)) for cfg in local} == expected
    bayes = [path for path in SWEEP_FILES if load_sweep_config(str(path))["method"] == "bayes"]
    with pytest.raises(ValueError, match="needs W&B's sweep server"):
        sweep_file_overrides(bayes[0])
