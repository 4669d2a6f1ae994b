"""The reweighted and worst_group mitigations: the weighted loss against a float64 computation by hand, the
GroupDRO update's direction, and both trained end to end from their experiments."""

from __future__ import annotations

import csv
import inspect
import itertools
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from pytorch_metric_learning import losses, reducers

from fairdml.config import compose_config, config_dir
from fairdml.config_checks import config_problems
from fairdml.losses import GroupWeightedReducer, check_group_weightable, create_loss, create_miner
from fairdml.mitigations.group_weighting import WorstGroupLoss, inverse_frequency_weights
from fairdml.train import run_training


def batch(seed: int, n_classes: int = 4, per_class: int = 3, dim: int = 8):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    embeddings = torch.nn.functional.normalize(torch.randn(len(labels), dim, generator=generator), dim=1)
    groups = (labels >= n_classes // 2).long()  # the second half of the classes is group 1
    return embeddings, labels, groups


def weighted(loss: torch.nn.Module, group_weights: torch.Tensor, groups: torch.Tensor) -> GroupWeightedReducer:
    reducer = GroupWeightedReducer(loss.reducer, lambda items, item_groups: group_weights)
    reducer.groups = groups
    loss.reducer = reducer
    return reducer


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_classes,per_class", [(4, 3), (6, 4)])
def test_triplet_loss_weighted_by_group_equals_a_float64_computation(seed, n_classes, per_class):
    """Every (anchor, positive, negative) triplet's relu(d_ap - d_an + m), times its anchor's group weight,
    summed and divided by the number of non-zero triplets (PML's AvgNonZeroReducer)."""
    embeddings, labels, groups = batch(seed, n_classes, per_class)
    w = torch.tensor([0.4, 3.0])
    loss = losses.TripletMarginLoss(margin=0.2)
    weighted(loss, w, groups)
    got = loss(embeddings, labels)
    x = embeddings.double()
    total, nonzero = 0.0, 0
    for a, p, n in itertools.product(range(len(labels)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
            term = max(0.0, float((x[a] - x[p]).norm() - (x[a] - x[n]).norm()) + 0.2)
            total += float(w[groups[a]]) * term
            nonzero += term > 0
    assert got.item() == pytest.approx(total / nonzero, rel=1e-5)


@pytest.mark.parametrize("name,miner", [("margin", "distance_weighted"), ("triplet", None), ("contrastive", None),
                                        ("multi_similarity", "multi_similarity")])  # fmt: skip
def test_unit_weights_give_exactly_the_unweighted_loss(name, miner):
    embeddings, labels, groups = batch(3, n_classes=8, per_class=4)
    plain = create_loss(name, 8, embeddings.shape[1])
    pairs = create_miner(miner)(embeddings, labels) if miner else None
    expected = plain(embeddings, labels, pairs)
    loss = create_loss(name, 8, embeddings.shape[1])
    weighted(loss, torch.ones(2), groups)
    assert torch.equal(loss(embeddings, labels, pairs), expected)
    heavier = create_loss(name, 8, embeddings.shape[1])
    weighted(heavier, torch.tensor([1.0, 2.0]), groups)
    assert heavier(embeddings, labels, pairs) > expected  # group 1's terms count double


def test_a_loss_with_per_class_terms_is_refused_before_training(tiny_overrides, tmp_path):
    """proxy_anchor's terms are per proxy (class): weighting them by "anchor" group would weight the wrong terms."""
    with pytest.raises(ValueError, match="per class"):
        check_group_weightable(create_loss("proxy_anchor", 4, 8))
    cfg = compose_config([*tiny_overrides, "experiment=reweighted", "loss=proxy_anchor", f"run_dir={tmp_path}"])
    with pytest.raises(ValueError, match="reweighted: the loss ProxyAnchorLoss cannot be weighted by group"):
        run_training(cfg)


def test_inverse_frequency_weights_equalise_group_totals():
    counts = np.array([540, 60, 0])
    w = inverse_frequency_weights(counts)
    assert w[2] == 0 and w[0] * counts[0] == pytest.approx(w[1] * counts[1])
    assert (w * counts).sum() / counts.sum() == pytest.approx(1.0)  # mean weight of a training sample


def test_worst_group_weight_rises_with_that_groups_loss():
    """Group 1's embeddings are noise (high loss), group 0's are clean: q_1 grows step after step, and under a
    mean-reduced loss the batch loss is sum_g q_g L_g with L_g the mean of group g's anchors' terms."""
    labels = torch.arange(8).repeat_interleave(4)
    groups = (labels >= 4).long()
    clean = torch.nn.functional.one_hot(labels, 16).float()
    noisy = torch.nn.functional.normalize(
        torch.randn(len(labels), 16, generator=torch.Generator().manual_seed(0)), dim=1
    )
    embeddings = torch.where((groups == 1)[:, None], noisy, clean)
    mitigation = WorstGroupLoss(step_size=0.5)
    mitigation.q = torch.tensor([0.5, 0.5])
    loss = losses.MultiSimilarityLoss()  # MeanReducer over per-anchor terms
    terms = losses.MultiSimilarityLoss(reducer=reducers.DoNothingReducer())(embeddings, labels)["loss"]["losses"]
    group_loss = torch.stack([terms[groups == g].mean() for g in (0, 1)]).double()
    assert group_loss[1] > group_loss[0]
    reducer = GroupWeightedReducer(loss.reducer, mitigation._group_weights)
    reducer.groups, loss.reducer = groups, reducer
    history = [mitigation.q[1].item()]
    for step in range(3):
        value = loss(embeddings, labels)
        q = torch.tensor([0.5, 0.5], dtype=torch.float64) * torch.exp(0.5 * (step + 1) * group_loss)
        q = q / q.sum()  # the same update by hand, applied step + 1 times
        assert mitigation.q.double().numpy() == pytest.approx(q.numpy(), rel=1e-5)
        assert value.item() == pytest.approx(float((q * group_loss).sum()), rel=1e-5)
        history.append(mitigation.q[1].item())
    assert history == sorted(history) and history[-1] > 0.5


def test_worst_group_yaml_mirrors_the_signature_and_bad_values_fail_first():
    entry = OmegaConf.to_container(OmegaConf.load(config_dir() / "callbacks" / "worst_group.yaml"))["worst_group"]
    assert entry.pop("_target_") == "fairdml.mitigations.group_weighting.WorstGroupLoss"
    parameters = inspect.signature(WorstGroupLoss.__init__).parameters
    assert entry == {key: parameters[key].default for key in ("step_size", "group_losses", "adjustment")}
    (problem,) = config_problems(compose_config(["experiment=worst_group", "callbacks.worst_group.step_size=-1"]))
    assert "step_size must be a number >= 0" in problem
    (problem,) = config_problems(compose_config(["experiment=worst_group", "callbacks.worst_group.group_losses=test"]))
    assert "group_losses must be one of ['train', 'val']" in problem


def test_worst_group_adjustment_adds_c_over_sqrt_n_to_each_groups_loss():
    """Sagawa et al.'s generalisation adjustment: q moves by step_size * (L_g + C / sqrt(n_g))."""
    mitigation = WorstGroupLoss(step_size=0.5, adjustment=2.0)
    mitigation.group_names, mitigation.train_counts = ["majority", "minority"], np.array([100, 4])
    mitigation._start(type("T", (), {"world_size": 1})())
    losses_ = torch.tensor([0.2, 0.4, 0.3, 0.3])
    groups = torch.tensor([0, 0, 1, 1])
    weights = mitigation._group_weights(losses_, groups)
    expected = torch.tensor([0.5, 0.5], dtype=torch.float64) * torch.exp(
        0.5 * torch.tensor([0.3 + 2.0 / 10, 0.3 + 2.0 / 2], dtype=torch.float64)
    )
    expected = expected / expected.sum()
    assert mitigation.q.double().numpy() == pytest.approx(expected.numpy(), rel=1e-6)
    assert weights.double().numpy() == pytest.approx((expected * 2).numpy(), rel=1e-6)  # q_g * M / M_g, M_g = M / 2


def test_worst_group_with_held_out_losses_moves_q_by_the_validation_error(tiny_overrides, tmp_path):
    """group_losses=val: q is uniform during the first epoch, then q_g ∝ exp(step_size · (1 − val Recall@1_g))
    after each validation, from the figures the run logged (the sanity check does not count)."""
    overrides = [*tiny_overrides, "experiment=worst_group_heldout", "trainer.max_epochs=2",
                 "callbacks.worst_group.step_size=2.0", f"run_dir={tmp_path / 'run'}"]  # fmt: skip
    run_dir = run_training(compose_config(overrides))
    report = json.loads((run_dir / "report.json").read_text())
    measured = report["mitigations"]["worst_group"]["measured"]
    with open(next(run_dir.rglob("metrics.csv"))) as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val_groups/recall_at_1/minority")]
    errors = np.array(
        [[1 - float(row[f"val_groups/recall_at_1/{g}"]) for g in ("majority", "minority")] for row in rows]
    )
    assert len(errors) == 2
    q = np.exp(2.0 * errors.sum(axis=0))
    q = q / q.sum()
    assert [measured["final_q"][g] for g in ("majority", "minority")] == pytest.approx(q.tolist(), rel=1e-5)
    assert measured["last_val_losses"]["minority"] == pytest.approx(errors[-1, 1], abs=1e-6)


@pytest.mark.parametrize("experiment", ["reweighted", "worst_group"])
def test_experiment_trains_and_reports_its_weights(experiment, tiny_overrides, tmp_path):
    run_dir = run_training(compose_config([*tiny_overrides, f"experiment={experiment}", f"run_dir={tmp_path / 'run'}"]))
    report = json.loads((run_dir / "report.json").read_text())
    entry = report["mitigations"][experiment]
    summary = json.loads((run_dir / "data_summary.json").read_text())
    train = {g: e["n"] for g, e in summary["splits"]["train"]["groups"].items()}
    if experiment == "reweighted":
        assert entry["measured"]["train_counts"] == train
        weights = entry["measured"]["group_weights"]
        assert weights["minority"] * train["minority"] == pytest.approx(weights["majority"] * train["majority"])
    else:
        q = entry["measured"]["final_q"]
        assert sum(q.values()) == pytest.approx(1.0) and q != {"majority": 0.5, "minority": 0.5}
        with open(next(run_dir.rglob("metrics.csv"))) as handle:
            assert "worst_group/q/minority" in next(csv.reader(handle))
        # q is in the checkpoint, so a resumed run continues it instead of restarting from uniform.
        state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
        (saved,) = [v["q"] for k, v in state.items() if k.startswith("WorstGroupLoss")]
        assert saved == pytest.approx([q["majority"], q["minority"]])


@pytest.mark.parametrize(
    "experiment",
    ["baseline", "group_balanced", "reweighted", "worst_group", "worst_group_heldout", "parade", "parade_paper",
     "group_balanced_parade", "digits_local", "digits_pretrained"],
)  # fmt: skip
def test_every_mitigation_experiment_composes_and_passes_the_checks(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.experiment == experiment and config_problems(cfg) == []
