"""Model card from a fake run folder: HF metadata round-trip, escaping, self-contained HTML, contents."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard

from fairdml.metrics.functional import thresholds as th
from fairdml.reports.card import load_card_inputs, write_model_card

EVIL = "<script>alert(1)</script>"
EVIL_CONFIG = "fake & <b>bold</b>"
GROUPS = ("majority", EVIL)
METRICS = ("recall@1", "recall@2", "map@r", "nmi", "intra_alignment", "inter_alignment", "uniformity")


def fake_embeddings(seed: int = 0) -> dict[str, np.ndarray]:
    """16 classes of 8 samples; the second group's classes are noisier (a gap to see)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(16), 8)
    minority = labels >= 10
    centers = rng.normal(size=(16, 16))
    embeddings = centers[labels] + rng.normal(size=(len(labels), 16)) * np.where(minority, 1.3, 0.7)[:, None]
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return {
        "embeddings": embeddings.astype(np.float32),
        "labels": labels.astype(np.int64),
        "groups": np.where(minority, GROUPS[1], GROUPS[0]).astype(str),
        "group_attribute": np.array("style"),
    }


def fake_report() -> dict:
    rng = np.random.default_rng(1)
    groups = {name: {"n": n, **{m: float(rng.uniform(0.2, 0.9)) for m in METRICS}} for name, n in zip(GROUPS, (80, 48))}
    overall = {m: float(np.mean([g[m] for g in groups.values()])) for m in METRICS}
    overall["attribute_leakage"] = 0.71
    gaps = {}
    for m in METRICS:
        values = {name: g[m] for name, g in groups.items()}
        worst = min(values, key=values.get)
        gaps[m] = {
            "max_minus_min": max(values.values()) - min(values.values()),
            "min_over_max": min(values.values()) / max(values.values()),
            "worst_group": worst,
        }
    return {
        "n": 128,
        "overall": overall,
        "groups": groups,
        "gaps": gaps,
        "chance_level": {"attribute_leakage": 0.5},
        "warnings": [f"group {EVIL!r}: a test warning"],
        "meta": {"experiment": EVIL_CONFIG, "seed": 0, "split": "test", "group_attribute": "style"},
    }


def fake_config(parade: bool = True) -> dict:
    return {
        "experiment": EVIL_CONFIG,
        "seed": 0,
        "data": {"name": "digits", "sensitive_attribute": "style", "minority_share": 0.1},
        "model": {"backbone": "test_resnet", "embedding_dim": 16},
        "loss": {"name": "margin", "miner": "distance_weighted"},
        "optim": {"name": "adamw", "lr": 0.001},
        "trainer": {"max_epochs": 2},
        "parade": {"enabled": parade, "attributes": ["style"], "strength": 4.0, "projection_hidden": 512},
    }


def fake_data_summary() -> dict:
    def split(n_major, n_minor, classes_major, classes_minor):
        return {
            "n": n_major + n_minor,
            "classes": classes_major + classes_minor,
            "groups": {
                GROUPS[0]: {"n": n_major, "classes": classes_major, "images_per_class_mean": n_major / classes_major},
                GROUPS[1]: {"n": n_minor, "classes": classes_minor, "images_per_class_mean": n_minor / classes_minor},
            },
            "minority_share": n_minor / (n_major + n_minor),
            "imbalance_ratio": n_major / n_minor,
        }

    return {
        "dataset": "digits",
        "group_attribute": "style",
        "group_names": list(GROUPS),
        "minority_group": GROUPS[1],
        "requested_minority_share": 0.1,
        "imbalance_by": "samples",
        "splits": {"train": split(900, 100, 30, 10), "val": split(60, 40, 3, 2), "test": split(80, 48, 10, 6)},
    }


def write_fake_run(root: Path, parade: bool = True, optional: bool = True) -> Path:
    """A run folder in the contract of docs/architecture.md, with a malicious group name."""
    run = root / "run_2025-01-01"
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(fake_report()))
    np.savez(run / "embeddings_test.npz", **fake_embeddings())
    if optional:
        (run / "config.yaml").write_text(yaml.safe_dump(fake_config(parade)))
        (run / "data_summary.json").write_text(json.dumps(fake_data_summary()))
    return run


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
        assert entry.dataset_args == {"group_attribute": "style", "group": name, "n": report["groups"][name]["n"]}
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
    assert "PARADE settings" in body and "projection\\_hidden" in body
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


def test_parade_section_only_when_enabled(tmp_path):
    run = write_fake_run(tmp_path, parade=False)
    body = _body(write_model_card(run)["markdown"].read_text())
    assert "PARADE settings" not in body and "PARADE (attribute de-correlation) | disabled" in body


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
    assert load_card_inputs(Path(__file__).parents[1] / "configs" / "card" / "card_inputs.yaml").license is None
