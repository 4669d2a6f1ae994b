"""docs/extending.md "A metric": the recipe runs, and the metric it registers is in the report (value per group
against an independent float64 computation, gap and worst group), the log and monitor keys and the card."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from helpers.doc_blocks import run_blocks

from fairdml.callbacks.selection import validation_keys
from fairdml.metrics import MetricSpec, fairness_report, flatten_report, metric_spec, register_metric
from fairdml.metrics.spec import unregister_metric
from fairdml.reports.card.metric_names import metric_header, metric_info

torch.set_num_threads(1)
NAME = "class_centroid_norm"


@pytest.fixture(scope="module")
def recipe():
    """The section's namespace, run as an importable module (its spec names `<module>:class_centroid_norm`)."""
    module = types.ModuleType("doc_extending_metric")
    sys.modules[module.__name__] = module
    try:
        yield run_blocks("docs/extending.md", "A metric", module.__dict__)
    finally:
        if metric_spec(NAME) is not None:
            unregister_metric(NAME)
        del sys.modules[module.__name__]


def reference_centroid_norm(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes with >= 2 samples of the norm of the mean unit embedding, in float64, class by class."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    norms = [np.linalg.norm(unit[labels == c].mean(axis=0)) for c in np.unique(labels) if (labels == c).sum() >= 2]
    return float(np.mean(norms))


def test_value_per_group_matches_float64_reference(recipe):
    report, names = recipe["report"], ["tight", "loose"]
    x = recipe["embeddings"].double().numpy()
    y, groups = recipe["labels"].numpy(), recipe["groups"].numpy()
    assert report["overall"][NAME] == pytest.approx(reference_centroid_norm(x, y), rel=1e-6)
    for code, name in enumerate(names):
        mask = groups == code
        assert report["groups"][name][NAME] == pytest.approx(reference_centroid_norm(x[mask], y[mask]), rel=1e-6)


def test_gap_and_worst_group(recipe):
    values = {name: entry[NAME] for name, entry in recipe["report"]["groups"].items()}
    gap = recipe["report"]["gaps"][NAME]
    assert gap["worst_group"] == "loose" == min(values, key=values.__getitem__)  # higher is better
    assert gap["max_minus_min"] == pytest.approx(values["tight"] - values["loose"])
    assert gap["min_over_max"] == pytest.approx(values["loose"] / values["tight"])


def test_log_keys_and_monitor_keys(recipe):
    flat = flatten_report(recipe["report"], "val")
    summaries = {f"val/{NAME}{suffix}" for suffix in ("", "/gap", "/ratio", "/worst")}
    assert {key for key in flat if NAME in key} == {f"val_groups/{NAME}/tight", f"val_groups/{NAME}/loose", *summaries}
    assert flat[f"val/{NAME}/worst"] == recipe["report"]["groups"]["loose"][NAME]
    figures = [key for key in flat if not key.endswith(("/low", "/high"))]  # a validation report has no intervals
    assert figures == validation_keys((1,), ["tight", "loose"], leakage=False)  # the monitor accepts each


def test_card_label(recipe):
    assert metric_header(NAME) == "Class-centroid norm ↑"
    assert metric_info(NAME)[0] == "Class-centroid norm"


def test_registration_errors(recipe):
    spec = metric_spec(NAME)
    with pytest.raises(ValueError, match="already exists"):
        register_metric(spec)
    with pytest.raises(ValueError, match="already exists"):
        register_metric(MetricSpec("nmi", "NMI", "", True, "per_set", compute="x:y"))
    with pytest.raises(ValueError, match="only per_set and per_query metrics"):
        register_metric(MetricSpec("new", "New", "", True, "overall"))
    with pytest.raises(ValueError, match="compute must be 'module:function'"):
        MetricSpec("new", "New", "", True, "per_set", compute="no_colon")
    with pytest.raises(ValueError, match="needs compute"):
        MetricSpec("new", "New", "", True, "per_set")
    with pytest.raises(ValueError, match="no registered metric 'nmi'"):
        unregister_metric("nmi")  # built-ins stay


def test_bad_compute_path_fails_before_any_work(recipe):
    register_metric(MetricSpec("broken", "Broken", "", True, "per_set", compute="fairdml.metrics:no_such_function"))
    try:
        with pytest.raises(ImportError, match="metric 'broken'"):
            fairness_report(recipe["embeddings"], recipe["labels"], recipe["groups"], ks=(1,), leakage=False)
    finally:
        unregister_metric("broken")


def test_unregistered_metric_leaves_the_report(recipe):
    spec = unregister_metric(NAME)
    try:
        report = fairness_report(recipe["embeddings"], recipe["labels"], recipe["groups"], ks=(1,), leakage=False)
        assert NAME not in report["overall"] and NAME not in report["gaps"]
        assert metric_spec(NAME) is None
    finally:
        register_metric(spec)
