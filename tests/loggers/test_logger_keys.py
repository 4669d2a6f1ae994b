"""Logger keys every Lightning logger accepts, and any Lightning logger named by `_target_`.

MLflow's rule is the strictest (its documentation: names may only contain alphanumerics, underscores, dashes,
periods, spaces and slashes); it is written out here rather than imported, so the test needs no MLflow.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from fairdml.config import compose_config
from fairdml.config_checks import config_problems
from fairdml.metrics.fairness import flatten_report
from fairdml.metrics.functional.report import fairness_report
from fairdml.metrics.spec import report_log_keys
from fairdml.train import run_training

MLFLOW_NAME = re.compile(r"^[/\w.\- ]*$")
ODD_GROUPS = ["Male=1|Pale_Skin=0", "über 60", "a/b", "x@y", "plain"]


@pytest.mark.parametrize("names", [["majority", "minority"], ODD_GROUPS])
@pytest.mark.parametrize("n", [40, 97])
def test_every_key_is_a_valid_mlflow_name_and_distinct(names, n):
    rng = np.random.default_rng(n)
    labels = torch.from_numpy(rng.integers(0, 8, n))
    groups = torch.from_numpy(np.arange(n) % len(names))
    embeddings = torch.from_numpy(rng.normal(size=(n, 6)))
    report = fairness_report(embeddings, labels, groups, group_names=names, ks=(1, 2), bootstrap_resamples=20)
    flat = flatten_report(report, "test")
    assert flat and all(MLFLOW_NAME.match(key) for key in flat), [k for k in flat if not MLFLOW_NAME.match(k)]
    assert all(key.count("/") <= 4 for key in flat)  # a group's "/" never adds a level
    sections = {key.split("/", 1)[0] for key in flat}
    assert sections == {"test", "test_groups"}  # W&B's panel sections: headline figures apart from per-group ones
    for name in names:  # every group's Recall@1 is under its own key, with the report's value
        (key,) = [k for k in report_log_keys("test", [], names, ["recall@1"]) if k.group == name]
        assert flat[key.key] == pytest.approx(report["groups"][name]["recall@1"])


def test_names_that_would_log_into_one_key_are_refused():
    with pytest.raises(ValueError, match=r"groups 'a/b' and 'a_b' both log as 'a_b'"):
        report_log_keys("val", ["recall@1"], ["a/b", "a_b"], ["recall@1"])


def test_a_monitor_in_the_old_key_style_names_the_new_key(tiny_overrides):
    from fairdml.callbacks.selection import check_monitor, validation_keys

    valid = validation_keys([1], ["majority", "minority"], leakage=False)
    renamed = {"val/recall@1/gap": "val/recall_at_1/gap", "val/map@r/group=minority": "val_groups/map_at_r/minority"}
    for old, new in renamed.items():
        with pytest.raises(ValueError, match=re.escape(f"the logged key is now {new!r}")):
            check_monitor(old, "max", valid)


def test_an_extra_logger_that_is_not_a_logger_or_not_installed_is_one_line():
    cfg = compose_config(["+logger.extra.bad._target_=collections.OrderedDict"])
    assert config_problems(cfg) == ["logger.extra.bad._target_='collections.OrderedDict' is not a Lightning logger"]
    cfg = compose_config(["+logger.extra.ml._target_=lightning.pytorch.loggers.MLFlowLogger"])
    (problem,) = config_problems(cfg)
    assert problem.startswith("logger.extra.ml: ") and "mlflow" in problem


def _tensorboard_scalars(folder: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[float]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):  # fit's writer, then the test's
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(event.value for event in accumulator.Scalars(tag))
    return scalars


def test_tensorboard_by_target_gets_the_same_per_group_keys_as_the_csv(tiny_overrides, tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = run_training(compose_config([*tiny_overrides, "logger=tensorboard", "logger.wandb.enabled=false",
                                           f"run_dir={tmp_path / 'run'}", "trainer.max_epochs=2"]))  # fmt: skip
    scalars = _tensorboard_scalars(run_dir / "tensorboard")
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    figures = {key for key in rows[0] if key.startswith(("val", "test"))}
    assert {"val_groups/recall_at_1/minority", "test_groups/map_at_r/majority", "test/recall_at_1/gap"} <= figures
    assert figures <= set(scalars)  # the same keys, and nothing renamed on the way
    for key in ("val_groups/recall_at_1/minority", "val/recall_at_1/gap"):
        csv_values = [float(row[key]) for row in rows if row.get(key)]
        assert len(csv_values) == 2 and scalars[key] == pytest.approx(csv_values, abs=1e-6)
