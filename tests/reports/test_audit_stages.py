"""`fairdml audit` says what it is doing: one line per stage as it runs, and report["timings"]."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from fairdml.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")


def test_audit_prints_each_stage_and_records_its_seconds(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 120)
    embeddings = (rng.normal(size=(10, 6))[labels] + 0.5 * rng.normal(size=(120, 6))).astype(np.float32)
    np.savez(tmp_path / "emb.npz", embeddings=embeddings, labels=labels, groups=np.array(["a", "b"])[labels % 2])
    main(["audit", str(tmp_path / "emb.npz"), "--out", str(tmp_path / "out"), "--ks", "1"])
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if " ... " in line]
    top = ["read", "knn", "overall", "leakage", "groups", "intervals", "write", "card"]  # one line each, in order
    assert [line.split()[2] for line in lines] == top, lines
    assert all(re.fullmatch(r"fairdml audit: \w+ \.\.\. done in \d+\.\d s", line) for line in lines), lines
    assert printed.index("knn ... done") < printed.index("recall@1")  # live, before the table
    assert printed.index("card ... done") < printed.index("fairdml audit: model card in")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["timings"]) == {*top, "clustering", "geometry", "card_pairs"}  # nested stages timed too
    assert report["settings"]["kmeans_backend"] == "sklearn"  # "auto" on 120 samples
    assert report["settings"]["knn_backend"] == "faiss"  # "auto" with faiss installed (the dev extra)
    assert "timings" not in (tmp_path / "out" / "report.csv").read_text()
