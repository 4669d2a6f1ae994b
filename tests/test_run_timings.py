"""`report["timings"]` of a training run: every stage's seconds, the fit's split, the step and validation counts,
added to the report without changing its other content, and left out of report.csv and the tables."""

from __future__ import annotations

import json

import pytest
from helpers.tiny import TINY_OVERRIDES

from fairdml.callbacks.timings import FIT, FIT_OTHER, RUN_STAGES, SANITY_CHECK, TRAIN_STEPS, VALIDATION
from fairdml.config import compose_config
from fairdml.data.datamodule import DMLDataModule
from fairdml.reports.long_table import report_rows
from fairdml.reports.report import format_report_table
from fairdml.train import run_training
from fairdml.utils.numbers import strict_json

EPOCHS = 2
SECONDS = (*RUN_STAGES, TRAIN_STEPS, VALIDATION, SANITY_CHECK, FIT_OTHER, "total")
COUNTS = ("train_step_count", "validation_count")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A tiny run of EPOCHS epochs, then the same run resumed for one more: both reports and the run folder."""
    run_dir = tmp_path_factory.mktemp("timings") / "run"
    overrides = [*TINY_OVERRIDES, f"run_dir={run_dir}", f"trainer.max_epochs={EPOCHS}"]
    run_training(compose_config(overrides))
    first_text = (run_dir / "report.json").read_text()
    card_copy = json.loads((run_dir / "model_card_data.json").read_text())["report"]
    resume = ["resume=last", f"trainer.max_epochs={EPOCHS + 1}", "evaluation.model_card=false"]
    run_training(compose_config([*overrides, *resume]))
    resumed = json.loads((run_dir / "report.json").read_text())
    return {"cfg": compose_config(overrides), "run_dir": run_dir, "first": json.loads(first_text),
            "first_text": first_text, "card_copy": card_copy, "resumed": resumed}  # fmt: skip


def _batches_per_epoch(cfg) -> int:
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    datamodule.setup()
    return len(datamodule.train_dataloader())


def test_every_stage_has_non_negative_seconds(trained):
    timings = trained["first"]["timings"]
    assert set(timings) == {*SECONDS, *COUNTS}
    assert all(isinstance(timings[name], float) and timings[name] >= 0 for name in SECONDS), timings
    assert timings[FIT] > 0 and timings[TRAIN_STEPS] > 0 and timings[VALIDATION] > 0 and timings["test"] > 0
    assert timings["model_card"] > 0 and timings["downstream"] == 0  # the card is on, downstream off by default


def test_the_fit_splits_into_steps_validation_and_the_rest(trained):
    timings = trained["first"]["timings"]
    inside = timings[TRAIN_STEPS] + timings[VALIDATION] + timings[SANITY_CHECK]
    assert inside <= timings[FIT] + 0.002  # each rounded to the millisecond
    assert timings[FIT_OTHER] == pytest.approx(timings[FIT] - inside, abs=0.003)


def test_the_stages_add_up_to_the_total(trained):
    timings = trained["first"]["timings"]
    parts = sum(timings[name] for name in RUN_STAGES)
    # what is not in a stage: the checkpoint selection's file and opening the staging folder (milliseconds)
    assert parts <= timings["total"] + 0.005
    assert parts == pytest.approx(timings["total"], rel=0.02, abs=0.1)


def test_every_training_step_and_validation_is_counted(trained):
    timings, per_epoch = trained["first"]["timings"], _batches_per_epoch(trained["cfg"])
    assert timings["train_step_count"] == EPOCHS * per_epoch
    assert timings["validation_count"] == EPOCHS  # check_val_every_n_epoch=1; the sanity check is not counted


def test_a_resumed_run_times_only_its_own_steps(trained):
    timings = trained["resumed"]["timings"]
    assert timings["train_step_count"] == _batches_per_epoch(trained["cfg"])  # the one epoch after the resume
    assert timings["validation_count"] == 1


def test_the_rest_of_the_report_is_written_as_before(trained):
    """The card was made from the report before the timings were added: the same figures, byte for byte once
    serialised, with "timings" appended as the last key."""
    report, card_copy = trained["first"], trained["card_copy"]
    assert list(report)[-1] == "timings"
    assert {key: value for key, value in report.items() if key != "timings"} == card_copy
    expected = json.dumps(strict_json({**card_copy, "timings": report["timings"]}), indent=2, allow_nan=False)
    assert trained["first_text"] == expected + "\n"


def test_timings_stay_out_of_the_csv_and_the_table(trained):
    report = trained["resumed"]
    csv_text = (trained["run_dir"] / "report.csv").read_text()
    for name in ("timings", TRAIN_STEPS, "train_step_count", "model_card"):
        assert name not in csv_text and name not in format_report_table(report), name
    assert report_rows(report) == report_rows({k: v for k, v in report.items() if k != "timings"})
