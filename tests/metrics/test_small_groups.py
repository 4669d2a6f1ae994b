"""Small groups (n < min_group_size) are flagged and never silently the worst group: report, table, metric
wrapper, `fairdml audit --min-group-size` and the model card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fairdml.metrics import EmbeddingFairness, fairness_report, flatten_report
from fairdml.metrics.functional import group_gaps
from fairdml.reports.report import format_report_table, load_report

pytestmark = pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")
GAP_KEYS = {"max_minus_min", "min_over_max", "worst_group"}
SMALL_KEYS = GAP_KEYS | {"worst_group_small", "small_groups_excluded"}


def tiny_and_large(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 "large" samples in 5 tight classes, and one "tiny" sample of class 0 placed among class 1.

    The tiny group retrieves the wrong class: with no minimum it is the worst group of recall@1 and map@r.
    """
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(5, 8))
    labels = np.repeat(np.arange(5), 8)
    embeddings = centres[labels] + 0.1 * rng.normal(size=(40, 8))
    embeddings = np.vstack([embeddings, centres[1] + 0.1 * rng.normal(size=(1, 8))]).astype(np.float32)
    labels = np.append(labels, 0)
    groups = np.array(["large"] * 40 + ["tiny"])
    return embeddings, labels, groups


def test_one_sample_group_is_flagged_warned_and_never_plain_worst():
    embeddings, labels, groups = tiny_and_large()
    report = fairness_report(embeddings, labels, groups, ks=(1, 2), leakage=False)
    assert report["groups"]["tiny"]["small"] is True
    assert list(report["groups"]["tiny"])[:2] == ["n", "small"]  # the flag sits next to n
    assert "small" not in report["groups"]["large"]
    assert report["settings"]["min_group_size"] == 30
    small_warnings = [w for w in report["warnings"] if "is small" in w]
    assert small_warnings == [small_warnings[0]] and "'tiny'" in small_warnings[0]
    assert "n=1" in small_warnings[0] and "min_group_size=30" in small_warnings[0]
    for metric, gap in report["gaps"].items():
        assert set(gap) == SMALL_KEYS, metric
        assert gap["worst_group"] == "large" and gap["worst_group_small"] is False, metric
    for metric in ("recall@1", "map@r"):  # the metrics where tiny has a value (and is worse)
        gap, tiny, large = report["gaps"][metric], report["groups"]["tiny"][metric], report["groups"]["large"][metric]
        assert tiny < large
        assert gap["small_groups_excluded"] == ["tiny"]
        assert gap["max_minus_min"] == pytest.approx(large - tiny)  # the gap still spans every group
    assert report["gaps"]["nmi"]["small_groups_excluded"] == []  # tiny has no NMI: nothing passed over
    json.dumps(report, allow_nan=False)


def test_min_group_size_one_restores_the_old_report():
    embeddings, labels, groups = tiny_and_large()
    old = fairness_report(embeddings, labels, groups, ks=(1, 2), leakage=False, min_group_size=1)
    assert "small" not in old["groups"]["tiny"]
    assert all(set(gap) == GAP_KEYS for gap in old["gaps"].values())
    assert old["gaps"]["recall@1"]["worst_group"] == "tiny"
    assert not any("is small" in w for w in old["warnings"])
    new = fairness_report(embeddings, labels, groups, ks=(1, 2), leakage=False)
    assert old["overall"] == new["overall"]
    for metric, gap in old["gaps"].items():
        assert gap["max_minus_min"] == new["gaps"][metric]["max_minus_min"]
        assert gap["min_over_max"] == new["gaps"][metric]["min_over_max"]


def test_all_groups_small_picks_among_them_and_says_so():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 6)
    embeddings = rng.normal(size=(4, 6))[labels] + 0.5 * rng.normal(size=(24, 6))
    groups = np.array(["a", "b"])[np.arange(24) % 2]
    report = fairness_report(embeddings, labels, groups, ks=(1,), leakage=False)
    assert report["groups"]["a"]["small"] and report["groups"]["b"]["small"]
    assert sum("is small" in w for w in report["warnings"]) == 2
    for metric, gap in report["gaps"].items():
        assert gap["worst_group"] in {"a", "b"}, metric
        assert gap["worst_group_small"] is True and gap["small_groups_excluded"] == [], metric
    table = format_report_table(report)
    assert f"{report['gaps']['recall@1']['worst_group']}*" in table.splitlines()[3]  # the recall@1 row


def test_group_gaps_with_small_groups():
    values = {"big": 0.8, "tiny": 0.1, "other": 0.7, "gone": None}
    gap = group_gaps(values, higher_better=True, small_groups={"tiny", "gone"})
    assert gap == {
        "max_minus_min": pytest.approx(0.7),
        "min_over_max": pytest.approx(0.1 / 0.8),
        "worst_group": "other",
        "worst_group_small": False,
        "small_groups_excluded": ["tiny"],  # "gone" has no value: nothing was passed over
    }
    only_small = group_gaps({"big": None, "tiny": 0.1, "t2": 0.3}, True, small_groups=["tiny", "t2"])
    assert only_small["worst_group"] == "tiny" and only_small["worst_group_small"] is True
    assert only_small["small_groups_excluded"] == []
    assert set(group_gaps(values, higher_better=True)) == GAP_KEYS  # no small_groups: the old shape
    assert group_gaps(values, higher_better=True)["worst_group"] == "tiny"
    empty = group_gaps({"a": None}, True, small_groups=[])
    assert empty == {
        "max_minus_min": None,
        "min_over_max": None,
        "worst_group": None,
        "worst_group_small": False,
        "small_groups_excluded": [],
    }


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "30"])
def test_min_group_size_must_be_a_positive_integer(bad):
    embeddings, labels, groups = tiny_and_large()
    with pytest.raises(ValueError, match=r"min_group_size must be an integer >= 1.*got"):
        fairness_report(embeddings, labels, groups, min_group_size=bad)
    with pytest.raises(ValueError, match="min_group_size"):
        EmbeddingFairness(group_names=["large", "tiny"], min_group_size=bad)


def test_table_marks_small_groups_and_a_small_worst():
    embeddings, labels, groups = tiny_and_large()
    report = fairness_report(embeddings, labels, groups, ks=(1,), leakage=False)
    lines = format_report_table(report).splitlines()
    assert lines[0].split() == ["metric", "overall", "large", "tiny", "gap", "ratio", "worst"]
    assert lines[2].split() == ["n", "41", "40", "1*"]
    recall = lines[3].split()
    assert recall[0] == "recall@1" and recall[-1] == "large"
    footnote = [line for line in lines if line.startswith("* small group")]
    assert footnote and "min_group_size=30" in footnote[0]
    old = format_report_table(fairness_report(embeddings, labels, groups, ks=(1,), leakage=False, min_group_size=1))
    assert "*" not in old and old.splitlines()[3].split()[-1] == "tiny"


def test_embedding_fairness_gives_the_functional_report():
    embeddings, labels, groups = tiny_and_large()
    codes = torch.as_tensor((groups == "tiny").astype(np.int64))
    z, y = torch.as_tensor(embeddings), torch.as_tensor(labels)
    for kwargs in ({}, {"min_group_size": 1}, {"min_group_size": 45}):
        metric = EmbeddingFairness(group_names=["large", "tiny"], ks=(1, 2), leakage=False, **kwargs)
        order = torch.randperm(41, generator=torch.Generator().manual_seed(2))
        for start in range(0, 41, 16):
            batch = order[start : start + 16]
            metric.update(z[batch], y[batch], codes[batch], batch)
        report = metric.compute()
        expected = fairness_report(z, y, codes, ks=(1, 2), group_names=["large", "tiny"], leakage=False, **kwargs)
        for section in ("n", "groups", "gaps", "warnings", "settings"):
            assert json.dumps(report[section]) == json.dumps(expected[section]), (kwargs, section)
        assert report["overall"] == pytest.approx(expected["overall"])
    assert report["gaps"]["recall@1"]["worst_group_small"] is True  # 45: every group is small
    default = EmbeddingFairness(group_names=["large", "tiny"]).settings.min_group_size
    assert default == 30


def test_flattened_worst_is_not_the_one_sample_group():
    embeddings, labels, groups = tiny_and_large()
    report = fairness_report(embeddings, labels, groups, ks=(1,), leakage=False)
    flat = flatten_report(report)
    assert flat["val/recall_at_1/worst"] == report["groups"]["large"]["recall@1"]
    assert not any(key.startswith("val/small") or "/small" in key for key in flat)


def write_tiny_npz(path) -> None:
    embeddings, labels, groups = tiny_and_large()
    np.savez(path, embeddings=embeddings, labels=labels, groups=groups, group_attribute=np.array("style"))


def test_cli_audit_accepts_min_group_size(tmp_path, capsys):
    from fairdml.cli import main

    write_tiny_npz(tmp_path / "emb.npz")
    out = tmp_path / "out"
    main(["audit", str(tmp_path / "emb.npz"), "--out", str(out), "--ks", "1", "--min-group-size", "50", "--no-card"])
    report = load_report(out / "report.json")
    assert report["settings"]["min_group_size"] == 50
    assert report["groups"]["large"]["small"] and report["groups"]["tiny"]["small"]
    assert "40*" in capsys.readouterr().out
    main(["audit", str(tmp_path / "emb.npz"), "--out", str(out), "--ks", "1", "--no-card", "--overwrite"])
    assert load_report(out / "report.json")["settings"]["min_group_size"] == 30  # the default
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", str(tmp_path / "emb.npz"), "--out", str(tmp_path / "o2"), "--min-group-size", "0"])
    assert exit_info.value.code == 2
    assert "min_group_size must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()  # refused before any work


def test_card_flags_the_small_group_and_never_shows_it_as_plain_worst(tmp_path):
    from fairdml.reports.audit import run_audit

    write_tiny_npz(tmp_path / "emb.npz")
    run_audit(str(tmp_path / "emb.npz"), str(tmp_path / "out"), ks=(1,), min_group_size=30)
    markdown = (tmp_path / "out" / "MODEL_CARD.md").read_text(encoding="utf-8")
    body = markdown.split("\n---\n", 1)[1]
    assert "| tiny ⚠ small |" in body  # flagged next to the group in the results table
    gap_rows = [line for line in body.splitlines() if line.startswith("| Recall@1") and "tiny" in line]
    assert gap_rows and all("not ranked (⚠ small): tiny" in row for row in gap_rows)
    assert "fewer than 30 test samples" in body
    assert "Group 'tiny' ⚠ small: only 1 test samples" in body
    html = (tmp_path / "out" / "model_card.html").read_text(encoding="utf-8")
    assert "tiny ⚠ small" in html
    sidecar = json.loads((tmp_path / "out" / "model_card_data.json").read_text(encoding="utf-8"))
    by_key = {(r["dataset_config"], r["metric_type"]): r for r in sidecar["eval_results"]}
    assert by_key[("style=tiny", "recall@1")]["dataset_args"]["small"] is True
    assert "small" not in by_key[("style=large", "recall@1")]["dataset_args"]
    gap = by_key[("gap:style", "recall@1/max_minus_min")]["metric_args"]
    assert gap["worst_group"] == "large" and gap["small_groups_excluded"] == ["tiny"]
    assert not any(r["metric_type"] == "small" for r in sidecar["eval_results"])


def test_card_marks_a_small_worst_group(tmp_path):
    from fairdml.reports.card.results import gap_table, worst_group_text

    gap = {"max_minus_min": 0.1, "min_over_max": 0.9, "worst_group": "b", "worst_group_small": True,
           "small_groups_excluded": []}  # fmt: skip
    assert worst_group_text(gap) == "b ⚠ small (only small groups have a value)"
    assert worst_group_text({"worst_group": "a"}) == "a"  # an old report: unchanged
    assert gap_table({"recall@1": gap}).rows[0][-1].startswith("b ⚠ small")
