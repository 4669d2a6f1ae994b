"""Downstream evaluation (fairdml.downstream, fairdml.evaluate): splits, imbalance, re-balancing, `fairdml evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.fixtures_datasets import population, write_population
from omegaconf import OmegaConf

from fairdml.cli import main
from fairdml.config import compose_config
from fairdml.data.splits import minority_count
from fairdml.downstream.protocol import (
    DownstreamData,
    downstream_evaluation,
    group_balanced_weights,
    unbalance,
    within_class_split,
)
from fairdml.evaluate import _test_view, run_evaluate


def test_within_class_split_is_exact():
    classes = np.repeat(np.arange(5), [1, 2, 4, 5, 10])
    train, test, singletons = within_class_split(classes, test_share=0.5, seed=0)
    assert singletons == 1 and not set(train) & set(test)
    assert sorted([*train, *test]) == list(range(1, len(classes)))  # all but the singleton class
    assert np.bincount(classes[test], minlength=5).tolist() == [0, 1, 2, 2, 5]  # round(0.5 n), in [1, n-1]
    assert set(classes[train]) == {1, 2, 3, 4}


@pytest.mark.parametrize("keep_classes", [False, True])
def test_unbalance_cuts_the_minority_exactly(keep_classes):
    classes = np.repeat(np.arange(20), 6)
    groups = (classes < 10).astype(np.int64)  # classes 0..9: minority code 1
    train = np.arange(len(classes))
    kept = unbalance(train, groups, 1, 0.1, seed=3, classes=classes if keep_classes else None)
    n_majority = int((groups == 0).sum())
    assert (groups[kept] == 0).sum() == n_majority  # majority untouched
    expected = max(minority_count(n_majority, 0.1), 10) if keep_classes else minority_count(n_majority, 0.1)
    assert (groups[kept] == 1).sum() == expected
    if keep_classes:  # 7 wanted < 10 minority classes: one image of each is kept
        assert set(classes[kept[groups[kept] == 1]]) == set(range(10))
    assert np.array_equal(unbalance(train, groups, 1, None, seed=3), train)


def test_group_balanced_weights():
    groups = np.array([0] * 30 + [1] * 5 + [3] * 15)
    weights = group_balanced_weights(groups)
    assert weights.sum() == pytest.approx(len(groups))
    sums = [weights[groups == g].sum() for g in (0, 1, 3)]
    assert sums == pytest.approx([len(groups) / 3] * 3)


def _two_rule_data(seed: int = 0) -> DownstreamData:
    """A binary attribute read from dimension 0 for the majority and dimension 1 for the minority.

    A classifier trained on few minority samples leans on dimension 0, which is noise for the minority,
    so the unbalanced setting must show a minority gap that re-balancing narrows.
    """
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(80), 10)
    groups = (classes % 2).astype(np.int64)  # odd classes are the minority
    target = rng.integers(0, 2, len(classes))
    sign = 2.0 * target - 1
    x = rng.normal(scale=1.0, size=(len(classes), 6))
    x[groups == 0, 0] += 1.5 * sign[groups == 0]
    x[groups == 1, 1] += 1.5 * sign[groups == 1]
    x[groups == 1, 0] += rng.normal(scale=2.0, size=(groups == 1).sum())
    return DownstreamData(
        x, classes, groups, ["light", "dark"], "tone", target=target, target_name="smiling",
        target_values=["not_smiling", "smiling"],
    )  # fmt: skip


def test_bias_propagates_and_rebalancing_narrows_it():
    result = downstream_evaluation(_two_rule_data(), minority_group="dark", minority_share=0.05, seed=1)
    assert result["kind"] == "binary" and result["minority_group"] == "dark"
    unbalanced, balanced = result["unbalanced"], result["balanced"]
    n_majority = unbalanced["train"]["groups"]["light"]
    assert unbalanced["train"]["groups"]["dark"] == minority_count(n_majority, 0.05)
    assert balanced["train"]["minority_weight_share"] == pytest.approx(0.5)
    assert unbalanced["n"] == balanced["n"] == 400  # the same held-out half of the classes
    gap_unbalanced = unbalanced["groups"]["light"]["accuracy"] - unbalanced["groups"]["dark"]["accuracy"]
    gap_balanced = balanced["groups"]["light"]["accuracy"] - balanced["groups"]["dark"]["accuracy"]
    assert gap_unbalanced > 0.1 and gap_balanced < gap_unbalanced - 0.05
    assert unbalanced["gaps"]["accuracy"]["worst_group"] == "dark"
    for setting in (unbalanced, balanced):
        n = {g: setting["groups"][g]["n"] for g in ("light", "dark")}
        weighted = sum(setting["groups"][g]["accuracy"] * n[g] for g in n) / sum(n.values())
        assert setting["overall"]["accuracy"] == pytest.approx(weighted)
        assert setting["fairness"]["torchmetrics"]["demographic_parity"]["ratio"] == pytest.approx(
            setting["fairness"]["demographic_parity_ratio"], abs=1e-6
        )


def test_class_target_and_its_errors():
    rng = np.random.default_rng(0)
    classes = np.concatenate([np.repeat(np.arange(12), 6), [12]])  # class 12 has a single image
    centres = rng.normal(size=(13, 8)) * 5
    data = DownstreamData(
        centres[classes] + 0.2 * rng.normal(size=(len(classes), 8)), classes, (classes < 4).astype(np.int64),
        ["majority", "minority"], "style",
    )  # fmt: skip
    result = downstream_evaluation(data, minority_share=0.1, bootstrap_resamples=0)
    assert result["kind"] == "multiclass" and result["label"] == "class" and "fairness" not in result["balanced"]
    assert result["excluded"] == {"classes_with_a_single_image": 1}
    assert result["unbalanced"]["train"]["groups"]["minority"] == 4  # one image of each minority class kept
    assert result["balanced"]["overall"]["accuracy"] == 1.0  # well-separated classes
    with pytest.raises(ValueError, match="attribute_leakage"):
        downstream_evaluation(DownstreamData(data.embeddings, classes, data.groups, ["a", "b"], "x", data.groups, "x"))
    with pytest.raises(ValueError, match="test_share"):
        downstream_evaluation(data, test_share=1.0)


# ---- fairdml evaluate RUN_DIR ------------------------------------------------------------------------------
def _run_dir(tmp_path, overrides: list[str], embeddings, labels, groups, names, minority) -> tuple:
    run = tmp_path / "run"
    run.mkdir()
    cfg = compose_config(overrides)
    OmegaConf.save(cfg, run / "config.yaml", resolve=True)
    np.savez(
        run / "embeddings_test.npz", embeddings=embeddings.astype(np.float32), labels=labels,
        groups=np.array(names)[groups], group_attribute=np.array(cfg.data.sensitive_attribute),
    )  # fmt: skip
    (run / "data_summary.json").write_text(json.dumps({"group_names": names, "minority_group": minority}))
    report = {"n": len(labels), "overall": {"recall@1": 0.5}, "groups": {}, "gaps": {}}
    (run / "report.json").write_text(json.dumps(report))
    return run, cfg


def test_cli_evaluate_from_embeddings(tmp_path, capsys):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 8)
    groups = (labels < 3).astype(np.int64)
    embeddings = rng.normal(size=(10, 16))[labels] * 3 + rng.normal(size=(80, 16))
    run, _ = _run_dir(
        tmp_path,
        ["data.minority_share=0.2"],
        embeddings,
        labels,
        groups,
        ["majority", "minority"],
        "minority",
    )
    main(["evaluate", str(run), "evaluation.downstream_test_share=0.25"])
    report = json.loads((run / "report.json").read_text())
    assert report["overall"] == {"recall@1": 0.5}  # the rest of the report is kept
    downstream = report["downstream"]
    assert downstream["protocol"]["test_share"] == 0.25 and downstream["unbalanced"]["n"] == 20
    assert downstream["protocol"]["unbalanced_minority_share"] == 0.2
    assert set(downstream["balanced"]["groups"]) == {"majority", "minority"}
    assert "unbalanced  minority" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(run), "evaluation.downstream_tst_share=0.3"])
    assert exit_info.value.code == 2 and "downstream_tst_share" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(tmp_path / "nowhere")])
    assert "no config.yaml" in capsys.readouterr().err


def test_attribute_label_from_the_rebuilt_test_split(tmp_path):
    root = tmp_path / "celeba"
    root.mkdir()
    write_population("celeba", root, population(40, 4, 16))
    overrides = ["data=celeba", f"data.root={root}", "data.options.sensitive_attributes=[Male]"]
    cfg = compose_config(overrides)
    view = _test_view(cfg, "Smiling")  # Smiling is added to the reader's attributes for the label
    smiling = view.attribute_column("Smiling")
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(len(view), 3))  # few noise dimensions: the probe sees ~20 samples
    embeddings[:, 0] += 10 * (2 * smiling - 1)  # near-perfect only if labels align with the rows
    groups = view.attribute_column("Male")
    run, _ = _run_dir(tmp_path, overrides, embeddings, view.labels, groups, ["not_Male", "Male"], "Male")
    main(["evaluate", str(run), "evaluation.downstream_label=Smiling"])
    downstream = json.loads((run / "report.json").read_text())["downstream"]
    assert downstream["label"] == "Smiling" and downstream["kind"] == "binary"
    assert downstream["label_values"] == ["not_Smiling", "Smiling"]
    assert downstream["protocol"]["split"] == "by class (class-disjoint)"
    assert downstream["balanced"]["overall"]["accuracy"] > 0.9
    shorter = len(view) - 1  # embeddings of another split: must be refused, not mislabelled
    np.savez(
        run / "embeddings_test.npz", embeddings=embeddings[:shorter], labels=view.labels[:shorter],
        groups=np.array(["Male"] * shorter), group_attribute=np.array("Male"),
    )  # fmt: skip
    with pytest.raises(ValueError, match="do not match"):
        run_evaluate(run, ["evaluation.downstream_label=Smiling"])


def test_evaluate_refuses_a_json_that_is_not_a_report_before_any_work(tmp_path, capsys):
    from fairdml.cli import main

    labels = np.repeat(np.arange(10), 8)
    embeddings = np.random.default_rng(1).normal(size=(80, 16))
    run, _ = _run_dir(tmp_path, [], embeddings, labels, (labels < 3).astype(np.int64), ["a", "b"], "b")
    (run / "report.json").write_text(json.dumps({"my": "notes"}))
    with pytest.raises(SystemExit):
        main(["evaluate", str(run)])
    assert "is not a fairdml report" in capsys.readouterr().err
    assert json.loads((run / "report.json").read_text()) == {"my": "notes"}
    (run / "report.json").write_text('{"n": 3, "overall": {')  # cut short
    with pytest.raises(SystemExit):
        main(["evaluate", str(run)])
    assert "report.json:1: not readable report" in capsys.readouterr().err
