"""`ReportSettings`: one frozen object that checks itself, builds from keyword options or a run's config, and
writes exactly the report's "settings" section."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from fairdml.metrics import EmbeddingFairness, ReportSettings, fairness_report

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")


def test_checks_fail_at_construction_with_the_old_messages():
    with pytest.raises(ValueError, match=r"kmeans_backend must be one of \('sklearn', 'faiss', 'auto'\), got 'torch'"):
        ReportSettings(kmeans_backend="torch")
    with pytest.raises(ValueError, match="min_group_size must be an integer >= 1"):
        ReportSettings(min_group_size=0)
    with pytest.raises(ValueError, match=r"every k must be >= 1, got \[1, 0\]"):
        ReportSettings(ks=(1, 0, 1))
    with pytest.raises(ValueError, match="ks must name at least one k"):
        ReportSettings(ks=())
    assert ReportSettings(ks=[4, 1, 4]).ks == (4, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ReportSettings().seed = 1


def test_build_overrides_and_names_a_mistyped_option():
    base = ReportSettings(seed=3, leakage=False)
    assert ReportSettings.build(base) is base
    assert ReportSettings.build(base, seed=4) == ReportSettings(seed=4, leakage=False)
    with pytest.raises(ValueError, match="min_group_size"):
        ReportSettings.build(base, min_group_size=-1)  # replace() checks again
    with pytest.raises(TypeError, match="Did you mean 'min_group_size'"):
        ReportSettings.build(min_group_sise=5)


@pytest.mark.parametrize(("split", "leakage", "resamples"), [("val", False, 0), ("test", True, 200)])
def test_from_config_follows_the_split_leakage_switch(split, leakage, resamples):
    """Validation reports skip the intervals (they only pick checkpoints); the test report has them."""
    cfg = {"ks": [1, 4], "leakage": True, "val_leakage": False, "min_group_size": 7, "bootstrap_resamples": 200}
    settings = ReportSettings.from_config(cfg, seed=5, split=split)
    expected = ReportSettings(ks=(1, 4), seed=5, leakage=leakage, min_group_size=7, bootstrap_resamples=resamples)
    assert settings == expected
    old_checkpoint = {key: value for key, value in cfg.items() if key != "min_group_size"}
    assert ReportSettings.from_config(old_checkpoint, 5, split).min_group_size == 30
    with pytest.raises(ValueError, match="split must be one of"):
        ReportSettings.from_config(cfg, 5, "train")


@pytest.mark.parametrize("bootstrap_resamples", [0, 20])
def test_settings_object_and_keywords_give_the_same_report(bootstrap_resamples):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(6).repeat_interleave(8)
    z = F.normalize(torch.randn(6, 8, generator=generator)[labels] + torch.randn(48, 8, generator=generator), dim=1)
    groups = labels % 2
    options = {"ks": (1, 2), "seed": 2, "leakage": False, "bootstrap_resamples": bootstrap_resamples}
    by_keywords = fairness_report(z, labels, groups, **options)
    by_object = fairness_report(z, labels, groups, ReportSettings(**options))
    assert by_object == by_keywords
    expected_keys = ["ks", "effective_ks", "seed", "distance", "kmeans_n_init", "kmeans_backend", "alpha", "t"]
    expected_keys += ["leakage", "leakage_split", "bootstrap_resamples", "min_group_size"]
    expected_keys += ["confidence", "interval_method"] if bootstrap_resamples else []
    assert list(by_object["settings"]) == expected_keys
    metric = EmbeddingFairness(["0", "1"], ReportSettings(**options))
    metric.update(z, labels, groups, torch.arange(48))
    assert metric.compute()["settings"] == by_keywords["settings"]
