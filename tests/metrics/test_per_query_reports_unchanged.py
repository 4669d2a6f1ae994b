"""Issue 25: recall@k and mAP@R became registered per-query metrics fed by the shared kNN; every report must
stay exactly as it was. Two checks: JSON equality with reports written by the code before the change
(`fixtures/per_query_reports.json`, made by running this file as a script at commit e21e5ce), and recall@k /
mAP@R against a float64 brute-force reference built from a full distance matrix. Issue 27 regenerated the
fixture on purpose: only "intervals" (expanded percentile, test inversion of the gaps) and the new
settings.interval_method changed; every other value was checked equal to the e21e5ce fixture.

Regenerate the fixture only on purpose (a report that changes is what these tests exist to catch):
    PYTHONPATH=<checkout at the reference commit> python tests/metrics/test_per_query_reports_unchanged.py
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fairdml.metrics import fairness_report

torch.set_num_threads(1)
FIXTURE = Path(__file__).parent / "fixtures" / "per_query_reports.json"

# name -> how to draw the inputs and the report's options. Together: 2 to 4 groups, crossed groups (marginals),
# small and empty groups, single-sample classes (queries without a positive), a group with no positive at all,
# k beyond the gallery, many kNN chunks, exact ties, every distance, float64 inputs, intervals and the probe.
CASES: dict[str, dict] = {
    "two_groups_singletons_leakage": dict(
        draw=dict(n=60, classes=12, groups=2, singletons=3, seed=0),
        options=dict(ks=(1, 2, 4, 8), bootstrap_resamples=200, leakage=True),
    ),
    "three_groups_many_chunks_small": dict(
        draw=dict(n=400, classes=40, groups=3, seed=1),
        options=dict(
            ks=(1, 5, 16), bootstrap_resamples=100, leakage=False, memory_budget_bytes=20_000, min_group_size=140
        ),
    ),  # fmt: skip
    "crossed_four_groups": dict(
        draw=dict(n=240, classes=30, groups=4, crossed=True, singletons=5, seed=2),
        options=dict(ks=(1, 4), bootstrap_resamples=100, leakage=False),
    ),
    "k_beyond_gallery": dict(
        draw=dict(n=7, classes=3, groups=2, seed=3),
        options=dict(ks=(1, 2, 20), bootstrap_resamples=0, leakage=False, min_group_size=1),
    ),
    "group_without_positives": dict(
        draw=dict(n=50, classes=8, groups=2, singletons=6, lonely_group=True, seed=4),
        options=dict(ks=(1, 2), bootstrap_resamples=50, leakage=False),
    ),
    "ties_cosine": dict(
        draw=dict(n=150, classes=15, groups=2, quantise=True, seed=5),
        options=dict(ks=(1, 2, 4, 8), bootstrap_resamples=100, leakage=False, distance="cosine"),
    ),
    "float64_inner_product_empty_group": dict(
        draw=dict(n=120, classes=20, groups=3, empty_group=True, float64=True, seed=6),
        options=dict(ks=(1, 3), bootstrap_resamples=100, leakage=False, distance="inner_product"),
    ),
    "defaults_1000": dict(draw=dict(n=1000, classes=100, groups=2, per_sample_groups=True, seed=7), options={}),
}


def draw(
    n: int,
    classes: int,
    groups: int,
    seed: int,
    singletons: int = 0,
    crossed: bool = False,
    lonely_group: bool = False,
    quantise: bool = False,
    empty_group: bool = False,
    float64: bool = False,
    per_sample_groups: bool = False,
    dim: int = 8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Clustered embeddings (N, dim), labels (N,), group codes (N,) and group names, from `seed` alone."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=generator)
    labels[:singletons] = classes + torch.arange(singletons)  # classes of one sample: queries without a positive
    centres = torch.randn(classes + singletons, dim, generator=generator, dtype=torch.float64)
    x = centres[labels] + 0.8 * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    if quantise:  # a coarse grid: exact duplicates and equidistant neighbours
        x = x.round()
    class_group = torch.randint(0, groups, (classes + singletons,), generator=generator)
    codes = torch.randint(0, groups, (n,), generator=generator) if per_sample_groups else class_group[labels]
    if lonely_group:  # the last group holds the single-sample classes alone
        codes = torch.where(torch.arange(n) < singletons, groups - 1, codes.clamp(max=groups - 2))
    names = [f"A={a}|B={b}" for a in (0, 1) for b in (0, 1)][:groups] if crossed else [f"g{i}" for i in range(groups)]
    if empty_group:
        names = [*names, "empty"]
    return (x if float64 else x.float()), labels, codes, names


def report_of(case: str) -> dict:
    embeddings, labels, codes, names = draw(**CASES[case]["draw"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fairness_report(embeddings, labels, codes, group_names=names, **CASES[case]["options"])


@pytest.fixture(scope="module")
def reference_reports() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", list(CASES))
def test_report_is_identical_to_the_reference_commit(case, reference_reports):
    report = report_of(case)
    # Byte equality of the serialised reports: the same keys in the same order, the same floats to the last bit.
    assert json.dumps(report) == json.dumps(reference_reports[case])


def brute_force_retrieval(x: np.ndarray, labels: np.ndarray, ks: tuple[int, ...]) -> tuple[dict, np.ndarray]:
    """Per-query recall@k and AP@R from the full float64 distance matrix, query by query (NaN: no positive)."""
    distances = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    np.fill_diagonal(distances, np.inf)
    n = len(labels)
    recall = {k: np.full(n, np.nan) for k in ks}
    average_precision = np.full(n, np.nan)
    for i in range(n):
        order = np.argsort(distances[i], kind="stable")[: n - 1]
        relevant = labels[order] == labels[i]
        r = int(relevant.sum())
        if r == 0:
            continue
        for k in ks:
            recall[k][i] = float(relevant[: min(k, n - 1)].any())
        hits = relevant[:r]
        average_precision[i] = sum(hits[: j + 1].sum() / (j + 1) for j in range(r) if hits[j]) / r
    return recall, average_precision


def mean_or_none(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


@pytest.mark.parametrize("n, classes, groups, seed", [(40, 6, 2, 10), (150, 20, 3, 11), (400, 30, 4, 12)])
def test_recall_and_map_at_r_match_a_float64_brute_force(n, classes, groups, seed):
    embeddings, labels, codes, names = draw(n, classes, groups, seed, singletons=2, float64=True)
    ks = (1, 2, 4, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = fairness_report(embeddings, labels, codes, group_names=names, ks=ks, leakage=False,
                                 bootstrap_resamples=0, memory_budget_bytes=50_000)  # fmt: skip
    unit = torch.nn.functional.normalize(embeddings, dim=1).numpy()
    recall, average_precision = brute_force_retrieval(unit, labels.numpy(), ks)
    sets = {"overall": (report["overall"], np.ones(n, dtype=bool))}
    sets |= {name: (report["groups"][name], codes.numpy() == code) for code, name in enumerate(names)}
    for entry, mask in sets.values():
        for k in ks:
            assert entry[f"recall@{k}"] == pytest.approx(mean_or_none(recall[k][mask]), abs=1e-12)
        assert entry["map@r"] == pytest.approx(mean_or_none(average_precision[mask]), abs=1e-12)
    assert report["excluded"]["queries_without_positive"] == 2


if __name__ == "__main__":  # write the fixture with whatever fairdml is on the path (see the module docstring)
    import fairdml

    print(f"writing {FIXTURE} with {fairdml.__file__}", file=sys.stderr)
    FIXTURE.parent.mkdir(exist_ok=True)
    reports = {case: report_of(case) for case in CASES}
    FIXTURE.write_text(json.dumps(reports, indent=1) + "\n", encoding="utf-8")
