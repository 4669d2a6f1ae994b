"""docs/extending.md "A per-query metric": the recipe's 2 files (`my_metrics.py`, `my_report.py`), written to a
temporary folder and run, register precision@5 from outside fairdml; its values overall and per group equal a
float64 brute force, its log, monitor and interval keys and its card label follow, and a per-set version of the
same function agrees overall but searches only the group per group."""

from __future__ import annotations

import runpy
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.doc_blocks import python_blocks

from fairdml.callbacks.selection import validation_keys
from fairdml.metrics import MetricSpec, ReportSettings, fairness_report, flatten_report, metric_spec, register_metric
from fairdml.metrics.functional.knn import knn
from fairdml.metrics.spec import unregister_metric
from fairdml.reports.card.metric_names import metric_header, metric_info

torch.set_num_threads(1)
NAME, K = "precision@5", 5
SET_NAME = "set_precision@5"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The section's blocks as the files they name (first line `# <file>.py`); `my_report.py` run as a script."""
    folder = tmp_path_factory.mktemp("recipe")
    files = {}
    for block in python_blocks("docs/extending.md", "A per-query metric"):
        name = block.splitlines()[0].removeprefix("# ").strip()
        (folder / name).write_text(block, encoding="utf-8")
        files[name] = block
    sys.path.insert(0, str(folder))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            namespace = runpy.run_path(str(folder / "my_report.py"), run_name="my_report")
        yield {"files": files, **namespace}
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("my_metrics", None)
        if metric_spec(NAME) is not None:
            unregister_metric(NAME)


def test_the_recipe_is_two_files(recipe):
    assert sorted(recipe["files"]) == ["my_metrics.py", "my_report.py"]
    assert "register_metric(" in recipe["files"]["my_metrics.py"]
    assert metric_spec(NAME).compute == "my_metrics:precision_at_k" and metric_spec(NAME).k == K


def test_the_documented_figures(recipe):
    report = recipe["report"]
    assert round(report["overall"][NAME], 3) == 0.722
    assert {group: entry[NAME] for group, entry in report["groups"].items()} == {"tight": 1.0, "loose": 0.445}
    assert report["gaps"][NAME]["worst_group"] == "loose"
    # expanded percentile interval (issue 27; the plain percentile one was [0.29, 0.627]): 4 classes, t_3
    assert [round(bound, 3) for bound in report["intervals"][NAME]["loose"]] == [0.28, 0.68]
    loose = recipe["groups"] == 1  # "Why not per-set?": the loose group searched alone
    unit = F.normalize(recipe["embeddings"], dim=1)
    assert set_precision_at_5(unit[loose], recipe["labels"][loose], ReportSettings()) == pytest.approx(0.61)


def brute_force_precision(x: np.ndarray, labels: np.ndarray, k: int, gallery: np.ndarray | None = None) -> np.ndarray:
    """Per-query precision@k from the full float64 distance matrix (NaN: no other sample of the query's class in
    the gallery); `gallery` (bool mask) restricts both queries and neighbours to a set, as a per-set metric does."""
    keep = np.ones(len(labels), dtype=bool) if gallery is None else gallery
    x, labels = x[keep], labels[keep]
    distances = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    np.fill_diagonal(distances, np.inf)
    values = np.full(len(labels), np.nan)
    k_used = max(1, min(k, len(labels) - 1))
    for i in range(len(labels)):
        if (labels == labels[i]).sum() > 1:
            nearest = np.argsort(distances[i], kind="stable")[:k_used]
            values[i] = (labels[nearest] == labels[i]).mean()
    return values


def nan_mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def random_set(n: int, groups: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """float64 clustered embeddings with two single-sample classes and random (per-sample) groups."""
    generator = torch.Generator().manual_seed(seed)
    classes = max(2, n // 8)
    labels = torch.randint(0, classes, (n,), generator=generator)
    labels[:2] = torch.tensor([classes, classes + 1])  # queries without a positive
    centres = torch.randn(classes + 2, 8, generator=generator, dtype=torch.float64)
    x = centres[labels] + 0.9 * torch.randn(n, 8, generator=generator, dtype=torch.float64)
    codes = torch.randint(0, groups, (n,), generator=generator)
    return x, labels, codes, [f"g{i}" for i in range(groups)]


@pytest.mark.parametrize("n, groups, seed", [(5, 2, 0), (40, 2, 1), (150, 3, 2), (400, 4, 3)])
def test_values_match_a_float64_brute_force(recipe, n, groups, seed):
    x, labels, codes, names = random_set(n, groups, seed)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        report = fairness_report(x, labels, codes, group_names=names, ks=(1,), leakage=False, bootstrap_resamples=0,
                                 memory_budget_bytes=20_000)  # fmt: skip
    per_query = brute_force_precision(F.normalize(x, dim=1).numpy(), labels.numpy(), K)
    assert report["overall"][NAME] == pytest.approx(nan_mean(per_query), abs=1e-12)
    for code, name in enumerate(names):
        expected = nan_mean(per_query[codes.numpy() == code])
        assert report["groups"][name][NAME] == pytest.approx(expected, abs=1e-12)
    if n - 1 < K:
        assert f"{NAME}: k exceeds the gallery ({n - 1} samples); clamped to {n - 1}" in report["warnings"]
    assert any(message.endswith("excluded from recall@k, map@r and precision@k") for message in report["warnings"])


def test_log_monitor_and_interval_keys(recipe):
    report = recipe["report"]
    flat = flatten_report(report, "val")
    figures = {f"val/precision_at_5{suffix}" for suffix in ("", "/gap", "/ratio", "/worst")}
    figures |= {"val_groups/precision_at_5/tight", "val_groups/precision_at_5/loose"}
    bounds = {f"{key}/{end}" for key in figures - {"val/precision_at_5/ratio", "val/precision_at_5/worst"}
              for end in ("low", "high")}  # fmt: skip
    assert {key for key in flat if "precision_at_5" in key} == figures | bounds
    assert flat["val_groups/precision_at_5/loose"] == report["groups"]["loose"][NAME]
    assert figures <= set(validation_keys((1,), ["tight", "loose"], leakage=False))  # a monitor may name them


def test_card_label(recipe):
    assert metric_header(NAME) == "Precision@5 ↑"
    assert metric_info(NAME) == ("Precision@5", "share of the k = 5 nearest neighbours with the query's class (query "
                                 "excluded)")  # fmt: skip


def set_precision_at_5(embeddings: torch.Tensor, labels: torch.Tensor, settings: ReportSettings) -> float | None:
    """The same figure as a per-set metric: the kNN of the set's own samples (the gallery is the set)."""
    valid = (labels.unsqueeze(0) == labels.unsqueeze(1)).sum(dim=1) > 1
    if not valid.any():
        return None
    _, neighbours = knn(embeddings, min(K, len(labels) - 1), query_indices=valid.nonzero().flatten())
    return float((labels[neighbours] == labels[valid].unsqueeze(1)).double().mean())


@pytest.mark.parametrize("seed", [4, 5])
def test_per_set_version_agrees_overall_and_searches_the_group_per_group(recipe, seed):
    spec = register_metric(MetricSpec(SET_NAME, "Set precision@5", "", True, "per_set",
                                      compute=f"{__name__}:set_precision_at_5"))  # fmt: skip
    try:
        x, labels, codes, names = random_set(240, 2, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = fairness_report(x, labels, codes, group_names=names, ks=(1,), leakage=False, bootstrap_resamples=0)
    finally:
        unregister_metric(spec.name)
    assert report["overall"][SET_NAME] == pytest.approx(report["overall"][NAME], abs=1e-12)  # gallery: everyone
    unit = F.normalize(x, dim=1).numpy()
    for code, name in enumerate(names):
        in_group = codes.numpy() == code
        own_gallery = nan_mean(brute_force_precision(unit, labels.numpy(), K, gallery=in_group))
        assert report["groups"][name][SET_NAME] == pytest.approx(own_gallery, abs=1e-12)
        assert report["groups"][name][SET_NAME] != pytest.approx(report["groups"][name][NAME], abs=1e-3)


def test_registration_rules(recipe):
    with pytest.raises(ValueError, match="already exists"):
        register_metric(MetricSpec("recall@3", "R", "", True, "per_query", compute="m:f", k=3))  # any recall@k
    with pytest.raises(ValueError, match="needs compute"):
        MetricSpec("p", "P", "", True, "per_query", k=3)
    with pytest.raises(ValueError, match="k is a per_query metric's number of neighbours"):
        MetricSpec("p", "P", "", True, "per_set", compute="m:f", k=3)
    with pytest.raises(ValueError, match="k is a per_query metric's number of neighbours"):
        MetricSpec("p", "P", "", True, "per_query", compute="m:f", k=0)


def wrong_shape(neighbours, settings):
    return neighbours.matches.double()  # (c, k), not (c,)


def test_a_wrong_shape_names_the_metric(recipe):
    spec = register_metric(MetricSpec("wrong", "Wrong", "", True, "per_query", compute=f"{__name__}:wrong_shape", k=2))
    try:
        with pytest.raises(ValueError, match=r"metric 'wrong': its function must return a \(\d+,\) tensor"):
            fairness_report(recipe["embeddings"], recipe["labels"], recipe["groups"], ks=(1,), leakage=False)
    finally:
        unregister_metric(spec.name)
