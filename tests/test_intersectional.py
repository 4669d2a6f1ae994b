"""Intersectional groups end to end on a CelebA fixture in the published file layout: two attributes crossed into
four groups, checked against counts read independently from the fixture's files, through training (sampler,
metrics, logged keys, report.json, report.csv, the model card and the data card) and an audit."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from helpers.fixtures_datasets import write_two_attribute_celeba

from fairdml.config import compose_config
from fairdml.data import DMLDataModule
from fairdml.data.intersections import select_group_attribute
from fairdml.metrics.functional.report import fairness_report
from fairdml.reports import to_frame
from fairdml.reports.audit import run_audit
from fairdml.train import run_training

CROSSED = ["Male=0|Pale_Skin=0", "Male=0|Pale_Skin=1", "Male=1|Pale_Skin=0", "Male=1|Pale_Skin=1"]


def overrides(root, run_dir=None) -> list[str]:
    out = [
        "model=tiny", "data=celeba", f"data.root={root}", "data.options.sensitive_attributes=[Male,Pale_Skin]",
        "data.sensitive_attribute=[Male,Pale_Skin]", "data.image_size=32", "data.batch_size=32",
        "data.eval_batch_size=128", "data.minority_share=null", "evaluation.leakage=false",
        "evaluation.min_group_size=10", "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger=csv",
    ]  # fmt: skip
    return out + ([f"run_dir={run_dir}"] if run_dir is not None else [])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("crossed")
    truth = write_two_attribute_celeba(base / "celeba")
    mitigations = [
        "callbacks=[group_balanced,parade]", "callbacks.parade.attributes=['Male|Pale_Skin']",
        "callbacks.parade.measure_steps=5", "callbacks.parade.encoder_objective=covariance",
    ]  # fmt: skip
    run_dir = run_training(compose_config([*overrides(base / "celeba", base / "run"), *mitigations]))
    return base, truth, run_dir


def test_crossed_groups_match_the_attribute_file(tmp_path):
    truth = write_two_attribute_celeba(tmp_path / "celeba")
    cfg = compose_config(overrides(tmp_path / "celeba"))
    datamodule = DMLDataModule(cfg.data, seed=0)
    datamodule.setup()
    assert datamodule.group_attribute == "Male|Pale_Skin" and datamodule.group_names == CROSSED
    dataset = datamodule.views["train"].base
    files = [name.decode() for name in dataset.image_files]
    codes = dataset.attribute_column("Male|Pale_Skin")
    expected = [2 * truth[name][0] + truth[name][1] for name in files]
    np.testing.assert_array_equal(codes, expected)
    # Every split stratifies by crossed group, and the marginal columns are untouched.
    for view in datamodule.views.values():
        assert set(view.attribute_column("Male|Pale_Skin").tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(dataset.attribute_column("Male"), [truth[name][0] for name in files])
    assert select_group_attribute(dataset, ["Male", "Pale_Skin"]) == "Male|Pale_Skin"  # added once
    assert dataset.attribute_names.count("Male|Pale_Skin") == 1


def test_crossing_errors_name_the_problem(tmp_path):
    write_two_attribute_celeba(tmp_path / "celeba", n_classes=12, images=2)
    dataset = DMLDataModule(compose_config(overrides(tmp_path / "celeba")).data)
    dataset.setup()
    base = dataset.views["train"].base
    with pytest.raises(KeyError, match="Young"):
        select_group_attribute(base, ["Male", "Young"])
    with pytest.raises(ValueError, match="twice"):
        select_group_attribute(base, ["Male", "Male"])
    with pytest.raises(ValueError, match="empty"):
        select_group_attribute(base, [])
    with pytest.raises(ValueError, match="not a value"):
        bad = compose_config([*overrides(tmp_path / "celeba"), "data.minority_group=Male"])
        DMLDataModule(bad.data).setup()


def test_a_crossed_minority_group_is_the_one_under_represented(tmp_path):
    write_two_attribute_celeba(tmp_path / "celeba")
    cfg = compose_config(
        [*overrides(tmp_path / "celeba"), "data.minority_share=0.1", "data.minority_group='Male=1|Pale_Skin=1'"]
    )
    datamodule = DMLDataModule(cfg.data, seed=0)
    datamodule.setup()
    summary = datamodule.summary()
    assert summary["minority_group"] == "Male=1|Pale_Skin=1"
    assert summary["splits"]["train"]["minority_share"] == pytest.approx(0.1, abs=0.01)
    test_groups = summary["splits"]["test"]["groups"]
    assert test_groups["Male=1|Pale_Skin=1"]["n"] > 0.1 * summary["splits"]["test"]["n"]  # test untouched


@pytest.mark.parametrize("n_classes", [12, 40])
def test_marginal_figures_equal_a_report_on_the_marginal_partition(n_classes):
    """Each marginal group's figures equal those of a separate report whose groups are that attribute alone."""
    generator = torch.Generator().manual_seed(n_classes)
    labels = torch.arange(n_classes).repeat_interleave(5)
    embeddings = torch.nn.functional.one_hot(labels).float() + 0.6 * torch.randn(
        len(labels), n_classes, generator=generator
    )
    male, pale = labels % 2, (labels % 3 == 0).long()
    report = fairness_report(
        embeddings, labels, 2 * male + pale, group_names=CROSSED, ks=(1, 2), leakage=False, bootstrap_resamples=20
    )
    assert set(report["groups"]) == set(CROSSED) and set(report["marginals"]) == {"Male", "Pale_Skin"}
    for attribute, codes in (("Male", male), ("Pale_Skin", pale)):
        names = [f"{attribute}=0", f"{attribute}=1"]
        alone = fairness_report(embeddings, labels, codes, group_names=names, ks=(1, 2), leakage=False)
        assert report["marginals"][attribute]["groups"] == alone["groups"]
        assert report["marginals"][attribute]["gaps"] == alone["gaps"]
        for name in names:  # intervals cover every group, marginal ones included
            low, high = report["intervals"]["recall@1"][name]
            assert low <= alone["groups"][name]["recall@1"] <= high
    # Plain group names have no marginals.
    assert "marginals" not in fairness_report(embeddings, labels, male, ks=(1,), leakage=False)


def test_training_reports_crossed_and_marginal_groups(trained):
    base, truth, run_dir = trained
    report = json.loads((run_dir / "report.json").read_text())
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert list(report["groups"]) == CROSSED and summary["group_attribute"] == "Male|Pale_Skin"
    test_n = {g: e["n"] for g, e in summary["splits"]["test"]["groups"].items()}
    assert {g: e["n"] for g, e in report["groups"].items()} == test_n
    marginal = report["marginals"]["Male"]["groups"]
    assert marginal["Male=1"]["n"] == test_n["Male=1|Pale_Skin=0"] + test_n["Male=1|Pale_Skin=1"]
    intervals = report["intervals"]["recall@1"]  # on by default: class-level bootstrap, every group and gap
    assert set(intervals) == {"overall", *CROSSED, "gap", "Male=0", "Male=1", "Pale_Skin=0", "Pale_Skin=1",
                              "gap:Male", "gap:Pale_Skin"}  # fmt: skip
    assert report["mitigations"]["group_balanced"]["settings"] == {}
    assert report["mitigations"]["parade"]["settings"]["attributes"] == ["Male|Pale_Skin"]
    assert report["mitigations"]["parade"]["measured"]["Male|Pale_Skin"]  # PARADE's figures for the crossed attribute
    # Logged keys (the CSV logger's metrics.csv): crossed and marginal groups, and each attribute's gaps.
    with open(next(run_dir.rglob("metrics.csv"))) as handle:
        columns = next(csv.reader(handle))
    crossed_key, marginal_key = "test_groups/recall_at_1/Male-1.Pale_Skin-0", "test_groups/recall_at_1/Pale_Skin-1"
    for key in (crossed_key, marginal_key, "test/Male/recall_at_1/gap"):
        assert key in columns, key
    # report.csv: marginal rows carry their attribute.
    frame = to_frame(report)
    row = frame[(frame.group == "Male=1") & (frame.metric == "recall@1")]
    assert row.attribute.tolist() == ["Male"] and row.value.tolist() == [marginal["Male=1"]["recall@1"]]
    assert frame[(frame.group == "gap") & (frame.attribute == "Pale_Skin")].shape[0] > 0
    with open(run_dir / "report.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["group"] == "Male=1"]
    assert {r["metric"] for r in rows} == set(marginal["Male=1"]) - {"n", "small"}


def test_cards_show_crossed_and_marginal_groups(trained):
    _, _, run_dir = trained
    card = (run_dir / "model_card.html").read_text()
    for text in ("Male=1|Pale_Skin=0", "Groups by Male alone (marginal)", "Groups by Pale_Skin alone (marginal)"):
        assert text in card
    data_card = json.loads((run_dir / "data_card.json").read_text())
    assert data_card["group_names"] == CROSSED
    pairs = [table["attributes"] for table in data_card["cooccurrence"]]
    assert pairs == [["Male", "Pale_Skin"]]  # the crossed column is not an attribute of its own


def test_audit_of_a_crossed_npz_has_marginals(trained, tmp_path):
    _, _, run_dir = trained
    report = run_audit(str(run_dir / "embeddings_test.npz"), str(tmp_path / "audit"), model_card=False)
    trained_report = json.loads((run_dir / "report.json").read_text())
    assert (
        report["marginals"]["Pale_Skin"]["groups"].keys() == trained_report["marginals"]["Pale_Skin"]["groups"].keys()
    )
    assert (
        report["groups"]["Male=0|Pale_Skin=1"]["recall@1"] == trained_report["groups"]["Male=0|Pale_Skin=1"]["recall@1"]
    )


@pytest.mark.browser
def test_cards_load_in_a_browser(trained):
    from fairdml.reports.card.screenshot import CHROMIUM_ARGS, find_chromium

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install chromium; .ci/run installs it): browser test skipped")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install -e '.[dev]'")
    _, _, run_dir = trained
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for page_name, expected in (("model_card.html", "Male=1|Pale_Skin=1"), ("data_card.html", "Pale_Skin")):
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
                page.goto((run_dir / page_name).resolve().as_uri())
                page.wait_for_load_state("load")
                assert expected in page.inner_text("body") and not errors, (page_name, errors)
                page.close()
        finally:
            browser.close()
