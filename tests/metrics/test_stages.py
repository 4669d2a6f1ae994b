"""Stage timings: `report["timings"]` on request only (reports are compared byte for byte), the stage
collector and listener, and the "auto" k-means backend's choice."""

from __future__ import annotations

import re

import pytest
import torch

from fairdml.metrics.functional import fairness_report
from fairdml.metrics.functional.clustering import AUTO_FAISS_MIN_WORK, resolve_kmeans_backend
from fairdml.metrics.functional.stages import collect_stages, listen_stages, print_stages, stage
from fairdml.reports.long_table import report_rows

pytestmark = pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")


def small_set(n: int = 120):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 12
    embeddings = torch.nn.functional.one_hot(labels, 12).float() + 0.4 * torch.randn(n, 12, generator=generator)
    groups = (torch.arange(n) % 3 == 0).long()
    return embeddings, labels, groups


def test_timings_only_when_asked_and_with_every_stage():
    embeddings, labels, groups = small_set()
    plain = fairness_report(embeddings, labels, groups)
    assert "timings" not in plain
    timed = fairness_report(embeddings, labels, groups, timings=True, bootstrap_resamples=20)
    assert set(timed["timings"]) == {"knn", "overall", "clustering", "geometry", "leakage", "groups", "intervals"}
    assert all(seconds >= 0 for seconds in timed["timings"].values())
    assert {k: v for k, v in timed.items() if k not in ("timings", "intervals", "settings")} == {
        k: v for k, v in plain.items() if k not in ("intervals", "settings")
    }
    assert not any(row["metric"] == "knn" or row["group"] == "timings" for row in report_rows(timed))


def test_collector_sums_repeats_and_listener_sees_start_and_end():
    events = []
    with collect_stages() as outer, listen_stages(lambda name, seconds: events.append((name, seconds))):
        with stage("a"):
            pass
        with collect_stages() as inner, stage("a"):
            pass
    assert list(outer) == ["a"] and list(inner) == ["a"] and outer["a"] >= inner["a"]
    assert [name for name, _ in events] == ["a"] * 4
    assert [seconds is None for _, seconds in events] == [True, False, True, False]
    with stage("untimed"):  # no collector, no listener: nothing recorded, nothing raised
        pass
    assert "untimed" not in outer


def test_auto_kmeans_keeps_small_reports_and_names_the_backend_that_ran():
    embeddings, labels, groups = small_set()
    auto = fairness_report(embeddings, labels, groups, kmeans_backend="auto")
    sklearn = fairness_report(embeddings, labels, groups, kmeans_backend="sklearn")
    assert auto == sklearn  # "sklearn" recorded in settings too: the figure is reproducible from the report
    assert resolve_kmeans_backend("auto", 100_000, 2_000) == "faiss"  # faiss is in the dev extra
    assert resolve_kmeans_backend("auto", 10_000, AUTO_FAISS_MIN_WORK // 10_000 - 1) == "sklearn"
    assert resolve_kmeans_backend("sklearn", 100_000, 2_000) == "sklearn"


@pytest.mark.parametrize("n, dim", [(2, 3), (50, 4), (700, 16), (2500, 32)])
def test_uniformity_kernel_path_agrees_with_the_exact_one(n, dim):
    """The large-N path (pairs i < j, float32 exp, float64 row totals) against the float64 log-sum-exp."""
    from fairdml.metrics.functional.geometry import uniformity

    z = torch.nn.functional.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(n)), dim=1)
    exact = uniformity(z, method="exact")
    assert uniformity(z, method="kernel", memory_budget_bytes=64 * n) == pytest.approx(exact, abs=1e-6)
    assert uniformity(z) == exact  # "auto" keeps the exact path up to UNIFORMITY_EXACT_MAX_N samples


@pytest.mark.parametrize("n_classes", [40, 150])
def test_one_shared_uniformity_pass_equals_each_sets_exact_uniformity(monkeypatch, n_classes):
    """Above UNIFORMITY_EXACT_MAX_N the report takes every set's uniformity (overall, crossed and marginal groups)
    from one pass over the pairs; each equals the float64 uniformity of that set's own samples."""
    import fairdml.metrics.functional.geometry as geometry
    import fairdml.metrics.functional.report as report_module
    from fairdml.metrics.functional.geometry import uniformity

    monkeypatch.setattr(geometry, "UNIFORMITY_EXACT_MAX_N", 50)
    passes = []
    shared_pass = report_module.uniformity_pair_sums
    monkeypatch.setattr(report_module, "uniformity_pair_sums", lambda *a, **k: passes.append(1) or shared_pass(*a, **k))
    generator = torch.Generator().manual_seed(n_classes)
    labels = torch.arange(n_classes).repeat_interleave(4)
    noise = torch.randn(len(labels), 16, generator=generator)
    embeddings = torch.nn.functional.one_hot(labels % 16, 16).float() + noise
    codes = (labels % 3 == 0).long() * 2 + labels % 2
    names = ["A=0|B=0", "A=0|B=1", "A=1|B=0", "A=1|B=1"]
    report = fairness_report(embeddings, labels, codes, group_names=names, ks=(1,), leakage=False)
    z = torch.nn.functional.normalize(embeddings.double(), dim=1)
    assert report["overall"]["uniformity"] == pytest.approx(uniformity(z, method="exact"), abs=1e-6)
    for code, name in enumerate(names):
        exact = uniformity(z[codes == code], method="exact")
        assert report["groups"][name]["uniformity"] == pytest.approx(exact, abs=1e-6)
    assert passes == [1]  # one pass over the pairs for all nine sets
    a = report["marginals"]["A"]["groups"]["A=1"]["uniformity"]
    assert a == pytest.approx(uniformity(z[codes >= 2], method="exact"), abs=1e-6)


def test_print_stages_prints_one_line_per_stage(capsys):
    """A whole report with intervals (whose resamples run kNN and clustering inside): one line per top-level
    stage, each finished, however many times the stage ran."""
    embeddings, labels, groups = small_set()
    with print_stages("audit"):
        fairness_report(embeddings, labels, groups, bootstrap_resamples=20)
    lines = capsys.readouterr().out.splitlines()
    names = [line.split(": ", 1)[1].split(" ...", 1)[0] for line in lines]
    assert names == ["knn", "overall", "leakage", "groups", "intervals"], lines
    assert all(re.fullmatch(r"audit: \w+ \.\.\. done in \d+\.\d s", line) for line in lines), lines
