"""Model card from a fake run folder: HF metadata round-trip, escaping, self-contained HTML, contents."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.fixtures_card import EVIL, GROUPS, fake_embeddings, fake_report, write_fake_run
from huggingface_hub import ModelCard

from fairdml.metrics.functional import thresholds as th
from fairdml.reports.card import load_card_inputs, write_model_card
from fairdml.reports.card.render_markdown import md_text


@pytest.fixture
def card(tmp_path):
    run = write_fake_run(tmp_path)
    paths = write_model_card(run)
    return run, paths


def _body(markdown: str) -> str:
    return markdown.split("\n---\n", 1)[1]


def test_writes_three_files(card):
    run, paths = card
    assert set(paths) == {"markdown", "html", "data"}
    assert all(p.is_file() and p.parent == run for p in paths.values())


def test_hf_metadata_round_trips_group_slices(card):
    run, paths = card
    loaded = ModelCard.load(paths["markdown"])
    results = loaded.data.eval_results
    sidecar = json.loads(paths["data"].read_text())
    assert [dataclasses.asdict(r) for r in results] == sidecar["eval_results"]  # exact, slice by slice
    report = fake_report()
    by_key = {(r.dataset_config, r.metric_type): r for r in results}
    for name in GROUPS:
        entry = by_key[(f"style={name}", "recall@1")]
        assert entry.metric_value == report["groups"][name]["recall@1"]
        assert entry.dataset_args == {
            "group_attribute": "style",
            "group": name,
            "n": report["groups"][name]["n"],
        }
        rates = sidecar["verification"]["rates_at_operating_threshold"][name]
        assert by_key[(f"style={name}", "fmr")].metric_value == rates["fmr"]
        assert by_key[(f"style={name}", "fnmr")].metric_args["pairs"] == rates["genuines"]
    assert by_key[("overall", "attribute_leakage")].metric_value == 0.71
    gap = by_key[("gap:style", "recall@1/max_minus_min")]
    assert gap.metric_value == report["gaps"]["recall@1"]["max_minus_min"]
    assert gap.metric_args["worst_group"] == report["gaps"]["recall@1"]["worst_group"]
    assert ModelCard(paths["markdown"].read_text()).data.to_dict() == loaded.data.to_dict()
    assert loaded.data.library_name == "fairdml"


def test_html_escapes_every_string_and_keeps_the_data(card):
    _, paths = card
    page = paths["html"].read_text()
    assert EVIL not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert len(re.findall(r"<script\b", page, flags=re.I)) == 2  # the JSON data and the view's code
    match = re.search(r'<script type="application/json" id="card-data">(.*?)</script>', page, flags=re.S)
    assert match and "<" not in match.group(1) and ">" not in match.group(1) and "&" not in match.group(1)
    data = json.loads(match.group(1))
    assert [g["name"] for g in data["threshold_view"]["groups"]] == sorted(GROUPS)


def test_html_is_self_contained(card):
    _, paths = card
    page = paths["html"].read_text()
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert not re.search(r"<(link|iframe|img|object|embed)\b", page, flags=re.I)
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:|//)""", page, flags=re.I)
    assert not re.search(r"@import|url\(\s*['\"]?\s*(https?:|//)", page, flags=re.I)
    assert "default-src 'none'" in page  # the CSP forbids the page any network access


def test_markdown_has_mitchell_sections_prompts_and_escapes(card):
    run, paths = card
    body = _body(paths["markdown"].read_text())
    for title in (
        "Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
        "Quantitative analyses", "Ethical considerations", "Caveats and recommendations",
    ):  # fmt: skip
        assert f". {title}" in body
    assert EVIL not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert body.count("To fill in") == 10
    assert "PARADE (partial attribute de-correlation)" in body and "projection\\_hidden" in body
    assert "style.decorrelation | 0.1200" in body  # the figures the mitigation measured at the test
    assert "9.00" in body  # training imbalance ratio 900/100 from data_summary.json
    assert "8 / 8 / 8.0 / 8" in body  # images per class in the test embeddings


def test_user_inputs_replace_prompts(tmp_path):
    run = write_fake_run(tmp_path)
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(
        yaml.safe_dump(
            {
                "intended_uses": ["Research on subgroup gaps", "Teaching"],
                "license": "apache-2.0",
                "verification": {"operating_threshold": 0.5, "max_pairs_per_group": 40},
            }
        )
    )
    paths = write_model_card(run, inputs)
    text = paths["markdown"].read_text()
    assert "- Research on subgroup gaps" in text and "intended\\_uses" not in text.split("Out-of-scope")[0]
    assert ModelCard.load(paths["markdown"]).data.license == "apache-2.0"
    verification = json.loads(paths["data"].read_text())["verification"]
    assert verification["operating_threshold"] == 0.5
    assert all(p["genuine"] <= 40 and p["impostor"] <= 40 for p in verification["pairs"].values())


def test_card_numbers_equal_the_threshold_functions(card):
    run, paths = card
    verification = json.loads(paths["data"].read_text())["verification"]
    arrays = fake_embeddings()
    pairs = th.sample_pairs(arrays["labels"], arrays["groups"], 5000, 0)
    counts = th.pair_error_counts(arrays["embeddings"], pairs)
    k = verification["operating_index"]
    assert k == th.index_at_fmr(counts.pooled(), 0.01)[0]
    assert verification["rates_at_operating_threshold"] == th.rates_at_index(counts, k)
    assert verification["grid"]["thresholds"] == counts.thresholds.tolist()


def test_mitigation_sections_only_for_the_mitigations_used(tmp_path):
    run = write_fake_run(tmp_path, parade=False)
    body = _body(write_model_card(run)["markdown"].read_text())
    assert "PARADE (partial" not in body and "| Mitigations | none |" in body


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="report.json"):
        write_model_card(tmp_path)
    run = write_fake_run(tmp_path, optional=False)
    (run / "embeddings_test.npz").unlink()
    with pytest.raises(FileNotFoundError, match="embeddings_test.npz"):
        write_model_card(run)
    paths = write_model_card(run, threshold_view=False)  # optional files missing: said in the card
    body = _body(paths["markdown"].read_text())
    assert "config.yaml is missing" in body and "data\\_summary.json is missing" in body
    assert 'id="threshold-slider"' not in paths["html"].read_text()


def test_unknown_card_input_is_named(tmp_path):
    path = tmp_path / "inputs.yaml"
    path.write_text("intended_use: typo\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['intended_use'\]; valid keys"):
        load_card_inputs(path)
    assert load_card_inputs(Path(__file__).parents[2] / "configs" / "card" / "card_inputs.yaml").license is None


def _downstream_result() -> dict:
    """fairdml.evaluate's real output on the fake embeddings: unbalanced and balanced per-group reports."""
    from fairdml.downstream.protocol import DownstreamData, downstream_evaluation

    arrays = fake_embeddings()
    names = sorted(GROUPS)
    data = DownstreamData(
        embeddings=arrays["embeddings"],
        classes=arrays["labels"],
        groups=np.searchsorted(names, arrays["groups"]),
        group_names=names,
        group_attribute="style",
    )
    return downstream_evaluation(data, minority_group=EVIL, minority_share=0.5, bootstrap_resamples=20)


@pytest.mark.parametrize("shape", ["evaluate", "by_task"])
def test_downstream_section_and_metadata(tmp_path, shape):
    result = _downstream_result()
    downstream = result if shape == "evaluate" else {"smiling": result["balanced"]}
    run = write_fake_run(tmp_path)
    report = json.loads((run / "report.json").read_text())
    report["downstream"] = downstream
    (run / "report.json").write_text(json.dumps(report))
    paths = write_model_card(run)
    body = _body(paths["markdown"].read_text())
    html_page = paths["html"].read_text()
    tasks = {"label 'class' / unbalanced": "unbalanced", "label 'class' / balanced": "balanced"}
    if shape == "by_task":
        tasks = {"smiling": "balanced"}
    results = {(r.dataset_config, r.metric_type): r for r in ModelCard.load(paths["markdown"]).data.eval_results}
    for task, setting in tasks.items():
        entry = result[setting]
        section = next(part for part in body.split("### Downstream: ")[1:] if part.startswith(task))
        section = section.split("###")[0]
        for name, values in entry["groups"].items():
            row = next(line for line in section.splitlines() if line.startswith(f"| {md_text(name)} |"))
            assert f"| {values['accuracy']:.4f}" in row  # the group's accuracy, in its task's table
            slice_name = f"downstream:{task}:style={name}"
            assert results[(slice_name, "downstream/accuracy")].metric_value == values["accuracy"]
        gap = results[(f"downstream:{task}:gap", "downstream/accuracy/max_minus_min")]
        assert gap.metric_value == entry["gaps"]["accuracy"]["max_minus_min"]
    assert EVIL not in html_page and "Downstream classifiers" in html_page
    if shape == "evaluate":
        assert "protocol / classifier" in body  # the figures the card has no table for are still listed
