"""`fairdml audit` says what it is doing: a line per stage as it starts and ends, and report["timings"]."""

from __future__ import annotations

import json

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
    stages = ["read", "knn", "clustering", "geometry", "leakage", "intervals", "write", "card", "card_pairs"]
    for name in stages:
        assert f"fairdml audit: {name} ..." in printed
        assert f"fairdml audit: {name} done in " in printed
    assert printed.index("knn ...") < printed.index("knn done") < printed.index("recall@1")  # live, before the table
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["timings"]) == set(stages)
    assert report["settings"]["kmeans_backend"] == "sklearn"  # "auto" on 120 samples
    assert report["settings"]["knn_backend"] == "faiss"  # "auto" with faiss installed (the dev extra)
    assert "timings" not in (tmp_path / "out" / "report.csv").read_text()
