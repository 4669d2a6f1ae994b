"""`run_audit` and the report file helpers: npz in, report.json + table out, clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairdml.metrics.functional import fairness_report
from fairdml.reports.audit import run_audit
from fairdml.reports.report import format_report_table, load_report, save_report

pytestmark = pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")


def write_npz(path, n: int = 80, **overrides):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    embeddings = (rng.normal(size=(10, 6))[labels] + 0.5 * rng.normal(size=(n, 6))).astype(np.float32)
    arrays = {"embeddings": embeddings, "labels": labels, "groups": np.array(["light", "dark"])[labels % 2]}
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


def test_run_audit_writes_report_and_prints_table(tmp_path, capsys):
    arrays = write_npz(tmp_path / "emb.npz", group_attribute=np.array("skin_tone"))
    report = run_audit(str(tmp_path / "emb.npz"), str(tmp_path / "out"), ks=(1, 2), seed=1)
    saved = load_report(tmp_path / "out" / "report.json")
    assert saved == json.loads(json.dumps(report))
    assert saved["meta"]["group_attribute"] == "skin_tone"
    expected = fairness_report(arrays["embeddings"], arrays["labels"], arrays["groups"], ks=(1, 2), seed=1)
    assert saved["overall"] == pytest.approx(expected["overall"])
    assert set(saved["groups"]) == {"dark", "light"}
    assert list(saved["overall"])[:2] == ["recall@1", "recall@2"]
    printed = capsys.readouterr().out
    for word in ("recall@1", "map@r", "uniformity", "attribute_leakage", "light", "dark", "worst"):
        assert word in printed


def test_integer_groups_are_named_by_code(tmp_path):
    write_npz(tmp_path / "emb.npz", groups=np.arange(80) % 3)
    report = run_audit(str(tmp_path / "emb.npz"), str(tmp_path / "out"))
    assert set(report["groups"]) == {"0", "1", "2"}


def test_missing_file_array_or_shape_mismatch_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        run_audit(str(tmp_path / "nope.npz"), str(tmp_path / "out"))
    write_npz(tmp_path / "no_labels.npz", labels=None)
    with pytest.raises(KeyError, match="labels"):
        run_audit(str(tmp_path / "no_labels.npz"), str(tmp_path / "out"))
    write_npz(tmp_path / "short.npz", groups=np.zeros(79, dtype=int))
    with pytest.raises(ValueError, match=r"groups must have shape \(80,\)"):
        run_audit(str(tmp_path / "short.npz"), str(tmp_path / "out"))
    write_npz(tmp_path / "float_labels.npz", labels=np.zeros(80))
    with pytest.raises(ValueError, match="labels must be integers"):
        run_audit(str(tmp_path / "float_labels.npz"), str(tmp_path / "out"))


def test_save_report_writes_strict_json_and_load_checks_shape(tmp_path):
    report = {"n": 2, "overall": {"nmi": float("nan")}, "groups": {}, "gaps": {}}
    path = save_report(report, tmp_path / "sub" / "report.json")
    assert "NaN" not in path.read_text()
    assert load_report(path)["overall"]["nmi"] is None
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a fairdml report"):
        load_report(tmp_path / "other.json")


def test_table_has_a_row_per_metric_and_a_column_per_group():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 8, 60)
    report = fairness_report(rng.normal(size=(60, 5)), labels, labels % 2, group_names=["a", "b"], ks=(1,))
    lines = format_report_table(report).splitlines()
    assert lines[0].split() == ["metric", "overall", "a", "b", "gap", "ratio", "worst"]
    rows = {line.split()[0]: line.split() for line in lines[2:] if line and not line.startswith(("warning", "attr"))}
    assert set(rows) >= {"n", "recall@1", "map@r", "nmi", "inter_alignment", "intra_alignment", "uniformity"}
    assert rows["recall@1"][1] == f"{report['overall']['recall@1']:.4f}"
    assert rows["recall@1"][-1] == report["gaps"]["recall@1"]["worst_group"]


def test_cli_audit_writes_the_report_and_reports_bad_input_as_an_error(tmp_path, capsys):
    from fairdml.cli import main

    write_npz(tmp_path / "emb.npz")
    out = str(tmp_path / "out")
    main(["audit", str(tmp_path / "emb.npz"), "--out", out, "--ks", "1", "4", "--kmeans", "faiss", "--no-card"])
    report = load_report(tmp_path / "out" / "report.json")
    assert list(report["overall"])[:2] == ["recall@1", "recall@4"]
    assert report["settings"]["kmeans_backend"] == "faiss"
    assert "recall@4" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", str(tmp_path / "missing.npz"), "--out", out, "--no-card"])
    assert exit_info.value.code == 2
    assert "missing.npz" in capsys.readouterr().err


def test_one_audit_per_folder_and_overwrite_replaces_the_whole_set(tmp_path, capsys):
    """`audit A --out x` then `audit B --out x --no-card` once left B's report beside A's card."""
    from fairdml.cli import main

    write_npz(tmp_path / "a.npz")
    write_npz(tmp_path / "b.npz", n=60)
    out = tmp_path / "x"
    main(["audit", str(tmp_path / "a.npz"), "--out", str(out), "--ks", "1"])
    assert (out / "MODEL_CARD.md").is_file()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", str(tmp_path / "b.npz"), "--out", str(out), "--no-card"])
    assert exit_info.value.code == 2 and "one audit per folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    (out / "notes.txt").write_text("mine")
    main(["audit", str(tmp_path / "b.npz"), "--out", str(out), "--no-card", "--overwrite"])
    assert load_report(out / "report.json")["n"] == 60
    assert not (out / "MODEL_CARD.md").exists() and not (out / "model_card.html").exists()  # A's card is gone
    assert (out / "notes.txt").read_text() == "mine"  # not an audit's file: kept


def test_an_audit_that_fails_midway_leaves_the_earlier_audit_whole(tmp_path, capsys, monkeypatch):
    """Once: a full disk over an earlier audit left a new report and MODEL_CARD.md beside the old HTML card."""
    import errno

    import fairdml.reports.card.write as card_write
    from fairdml.cli import main

    write_npz(tmp_path / "a.npz")
    write_npz(tmp_path / "b.npz", n=60)
    out = tmp_path / "x"
    main(["audit", str(tmp_path / "a.npz"), "--out", str(out), "--ks", "1"])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(card_write, "write_model_card", full_disk)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", str(tmp_path / "b.npz"), "--out", str(out), "--ks", "1", "--overwrite"])
    assert exit_info.value.code == 2
    assert "No space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # A's set, byte for byte
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no staging folder left behind
