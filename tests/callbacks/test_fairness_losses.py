"""CIFP's instance FPR penalty (`fpr_penalty`) and FSCL's fair contrastive loss (`fair_contrastive`): the maths
against float64 loops, the gradients, and the mitigations in tiny training runs."""

from __future__ import annotations

import inspect
import json
import math
import re

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fairdml.config import compose_config, config_dir
from fairdml.config_checks import config_problems
from fairdml.data.datamodule import DMLDataModule
from fairdml.mitigations.fair_contrastive import (
    FairContrastive,
    fair_supcon_loss,
    fair_supcon_terms,
    similarity_profile,
)
from fairdml.mitigations.fpr_penalty import (
    FPRPenalty,
    cosine_similarities,
    fpr_penalty,
    instance_fpr,
    negative_pairs,
    soft_instance_fpr,
    unified_threshold,
)
from fairdml.mitigations.held_out import AttributeGroups
from fairdml.models.module import DMLModule
from fairdml.train import run_training
from fairdml.utils.errors import MitigationNotWiredError

SIZES = [(5, 3), (12, 4), (33, 8)]  # (N, D)


def _batch(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(n, d, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, max(2, n // 3), (n,), generator=generator)
    attributes = torch.randint(0, 2, (n,), generator=generator)
    return embeddings, labels, attributes


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---- CIFP: instance FPR penalty --------------------------------------------------------------------------------


def _penalty_by_loops(z: np.ndarray, y: np.ndarray, u: float, t: float) -> tuple[float, float, list[float]]:
    n = len(z)
    negatives = [_cos(z[i], z[j]) for i in range(n) for j in range(n) if y[i] != y[j]]
    threshold = float(np.quantile(negatives, 1 - u))  # linear interpolation, as torch.quantile
    fpr = []
    for i in range(n):
        soft = [1 / (1 + math.exp(-(_cos(z[i], z[j]) - threshold) / t)) for j in range(n) if y[j] != y[i]]
        fpr.append(sum(soft) / len(soft) if soft else None)
    kept = [f for f in fpr if f is not None]
    mean = sum(kept) / len(kept)
    penalty = sum(f / mean * f for f in kept) / len(kept)
    return penalty, threshold, [0.0 if f is None else f for f in fpr]


@pytest.mark.parametrize(("n", "d"), SIZES)
@pytest.mark.parametrize(("u", "t"), [(0.05, 0.05), (0.3, 0.2)])
def test_fpr_penalty_equals_a_loop_over_instances_and_their_negatives(n, d, u, t):
    z, y, _ = _batch(n, d, seed=n)
    y[0] = y[1]  # at least one positive pair; some labels may have a single sample (no positive: still counted)
    terms = fpr_penalty(z, y, u, t)
    penalty, threshold, fpr = _penalty_by_loops(z.numpy(), y.numpy(), u, t)
    assert terms.threshold.item() == pytest.approx(threshold, abs=1e-12)
    assert terms.instance_fpr.tolist() == pytest.approx(fpr, abs=1e-12)
    assert terms.penalty.item() == pytest.approx(penalty, abs=1e-12)


def test_fpr_penalty_gradient_is_that_of_the_second_moment_with_a_fixed_mean():
    """With w_i = FPR_i / mean FPR detached, ∇ mean(w · FPR) = ∇ mean(FPR²) / (2 · mean FPR) at fixed mean: high-FPR
    instances are pushed harder, which narrows the spread (the docstring's reading of CIFP's penalty)."""
    z, y, _ = _batch(24, 6, seed=1)
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(fpr_penalty(z, y, 0.1, 0.05).penalty, z)
    similarities, negatives = cosine_similarities(z), negative_pairs(y)
    fpr = soft_instance_fpr(similarities, negatives, unified_threshold(similarities, negatives, 0.1), 0.05)
    second_moment = (fpr**2).mean() / (2 * fpr.mean().detach())
    (expected,) = torch.autograd.grad(second_moment, z)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    torch.testing.assert_close(grad, expected)


def test_fpr_penalty_of_one_class_is_zero_with_a_zero_gradient():
    z = torch.randn(6, 4, requires_grad=True)
    terms = fpr_penalty(z, torch.zeros(6, dtype=torch.long), 0.05, 0.05)
    terms.penalty.backward()
    assert terms.penalty.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))


@pytest.mark.parametrize(("n", "block"), [(7, None), (30, 4), (41, 41)])
def test_hard_instance_fpr_equals_a_loop(n, block):
    z, y, _ = _batch(n, 5, seed=n)
    fpr, threshold = instance_fpr(z.float(), y, 0.1, block=block)
    x = z.float().double().numpy()
    negatives = [_cos(x[i], x[j]) for i in range(n) for j in range(n) if y[i] != y[j]]
    expected_threshold = float(np.quantile(negatives, 0.9))
    assert threshold == pytest.approx(expected_threshold, abs=1e-12)
    for i in range(n):
        others = [_cos(x[i], x[j]) for j in range(n) if y[j] != y[i]]
        expected = sum(s > expected_threshold for s in others) / len(others) if others else math.nan
        assert fpr[i].item() == pytest.approx(expected, abs=1e-12, nan_ok=True)


def test_hard_instance_fpr_estimates_the_threshold_from_sampled_rows_beyond_max_pairs():
    z, y, _ = _batch(200, 8, seed=3)
    exact, exact_threshold = instance_fpr(z, y, 0.05)
    sampled, sampled_threshold = instance_fpr(z, y, 0.05, max_pairs=200 * 50, seed=1)
    assert sampled_threshold != exact_threshold and abs(sampled_threshold - exact_threshold) < 0.1
    assert float(exact.mean()) == pytest.approx(0.05, abs=0.005)


# ---- FSCL: fair supervised contrastive loss ---------------------------------------------------------------------


def _fscl_by_loops(z: np.ndarray, y: np.ndarray, s: np.ndarray, tau: float, normalise: bool) -> float:
    n = len(z)
    losses, groups = [], []
    for i in range(n):
        positives = [p for p in range(n) if p != i and y[p] == y[i]]
        if not positives:
            continue
        kept = positives + [a for a in range(n) if a != i and y[a] != y[i] and s[a] == s[i]]
        denominator = sum(math.exp(_cos(z[i], z[a]) / tau) for a in kept)
        term = -sum(math.log(math.exp(_cos(z[i], z[p]) / tau) / denominator) for p in positives) / len(positives)
        losses.append(term)
        groups.append(s[i])
    if not normalise:
        return sum(losses) / len(losses)
    means = [np.mean([loss for loss, g in zip(losses, groups) if g == group]) for group in sorted(set(groups))]
    return float(np.mean(means))


@pytest.mark.parametrize(("n", "d"), SIZES)
@pytest.mark.parametrize("normalise", [False, True])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_fscl_equals_a_loop_over_anchors_and_positives(n, d, normalise, tau):
    z, y, s = _batch(n, d, seed=10 + n)
    y[0] = y[1]
    loss = fair_supcon_loss(z, y, s, tau, normalise)
    assert loss.item() == pytest.approx(_fscl_by_loops(z.numpy(), y.numpy(), s.numpy(), tau, normalise), abs=1e-10)


def test_fscl_ignores_negatives_of_another_group_and_its_gradient_flows():
    z, y, s = _batch(16, 4, seed=2)
    y[:], s[:] = torch.arange(16) // 2, torch.arange(16) // 8  # four classes per group, two samples each
    losses, anchors = fair_supcon_terms(z, y, s, 0.1)
    moved = z.clone()
    moved[8:] = torch.randn(8, 4, dtype=torch.float64)  # group 1's samples
    other_losses, _ = fair_supcon_terms(moved, y, s, 0.1)
    assert anchors.all() and torch.allclose(losses[:8], other_losses[:8])
    assert not torch.allclose(losses[8:], other_losses[8:])
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(fair_supcon_loss(z, y, s, 0.1), z)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_fscl_without_positives_is_zero_and_has_no_nan_gradient():
    z = torch.randn(4, 3, requires_grad=True)
    loss = fair_supcon_loss(z, torch.arange(4), torch.arange(4), 0.1)  # no positive, no same-group negative
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))
    z = torch.randn(5, 3, requires_grad=True)  # one anchor pair, one lone sample of its own group
    fair_supcon_loss(z, torch.tensor([0, 0, 1, 2, 3]), torch.tensor([0, 0, 1, 0, 2]), 0.1).backward()
    assert torch.isfinite(z.grad).all()


def test_similarity_profile_equals_a_loop():
    z, y, s = _batch(23, 4, seed=4)
    profile = similarity_profile(z, y, s, AttributeGroups("style", 0, ("a", "b")), block=5)
    x = z.numpy()
    for code, name in enumerate(("a", "b")):
        kinds = {"same_class": [], "other_class_same_attribute": [], "other_class_other_attribute": []}
        for i in (i for i in range(23) if s[i] == code):
            for j in range(23):
                if j == i:
                    continue
                if y[j] == y[i]:
                    kinds["same_class"].append(_cos(x[i], x[j]))
                elif s[j] == s[i]:
                    kinds["other_class_same_attribute"].append(_cos(x[i], x[j]))
                else:
                    kinds["other_class_other_attribute"].append(_cos(x[i], x[j]))
        group = profile["groups"][name]
        for kind, values in kinds.items():
            assert group[kind] == pytest.approx(np.mean(values), abs=1e-12)
        separation = np.mean(kinds["other_class_same_attribute"]) - np.mean(kinds["other_class_other_attribute"])
        assert group["attribute_separation"] == pytest.approx(separation, abs=1e-12)
    assert profile["n"] == 23 and sum(g["n"] for g in profile["groups"].values()) == 23


# ---- the mitigations ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "key"), [(FPRPenalty, "fpr_penalty"), (FairContrastive, "fair_contrastive")])
def test_yaml_lists_every_argument_with_the_signature_default(cls, key):
    entry = OmegaConf.to_container(OmegaConf.load(config_dir() / "callbacks" / f"{key}.yaml"))[key]
    assert entry.pop("_target_") == f"{cls.__module__}.{cls.__name__}"
    defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}
    assert entry == defaults and cls.name == key


def test_invalid_settings_are_listed_before_any_work():
    cfg = compose_config(
        ["callbacks=fpr_penalty", "callbacks.fpr_penalty.target_fpr=0", "callbacks.fpr_penalty.temperature=-1"]
    )
    (problem,) = config_problems(cfg)
    assert "target_fpr=0 must be in (0, 1)" in problem and "temperature=-1 must be > 0" in problem
    cfg = compose_config(["callbacks=fair_contrastive", "callbacks.fair_contrastive.strenght=1"])
    assert "did you mean 'strength'?" in config_problems(cfg)[0]


def test_experiments_compose_their_mitigations():
    assert list(compose_config(["experiment=group_balanced_fpr_penalty"]).callbacks) == [
        "group_balanced",
        "fpr_penalty",
    ]
    both = compose_config(["experiment=group_balanced_fair_contrastive"]).callbacks
    assert list(both) == ["group_balanced", "fair_contrastive"] and both.fair_contrastive.attribute is None


def _tiny_run(tiny_overrides, tmp_path, overrides: list[str]) -> tuple[dict, str]:
    run_dir = tmp_path / "run"
    report = json.loads(
        (run_training(compose_config([*tiny_overrides, *overrides, f"run_dir={run_dir}"])) / "report.json").read_text()
    )
    return report, (run_dir / "MODEL_CARD.md").read_text()


def test_a_run_with_the_fpr_penalty_reports_instance_fprs_per_group(tiny_overrides, tmp_path):
    report, card = _tiny_run(tiny_overrides, tmp_path, ["experiment=group_balanced_fpr_penalty"])
    entry = report["mitigations"]["fpr_penalty"]
    assert entry["settings"]["strength"] == 1.0 and list(report["mitigations"]) == ["group_balanced", "fpr_penalty"]
    measured = entry["measured"]
    assert measured["attribute"] == "style" and measured["n"] == report["n"]
    assert set(measured["groups"]) == {"majority", "minority"}
    assert measured["mean_fpr"] == pytest.approx(0.05, abs=0.01) and measured["fpr_std"] >= 0
    assert measured["gap"] == pytest.approx(
        abs(measured["groups"]["majority"]["mean_fpr"] - measured["groups"]["minority"]["mean_fpr"])
    )
    assert "Instance false-positive-rate penalty (CIFP)" in card


def test_a_bf16_run_with_fscl_reports_its_similarity_profile(tiny_overrides, tmp_path):
    report, card = _tiny_run(tiny_overrides, tmp_path, ["experiment=fair_contrastive", "trainer.precision=bf16-mixed"])
    measured = report["mitigations"]["fair_contrastive"]["measured"]
    assert measured["attribute"] == "style" and set(measured["groups"]) == {"majority", "minority"}
    for key in ("same_class", "other_class_same_attribute", "other_class_other_attribute", "attribute_separation"):
        assert math.isfinite(measured[key])
    assert "Fair supervised contrastive loss (FSCL)" in card


def test_loss_terms_take_bf16_embeddings_under_autocast_and_return_float32():
    z, y, s = _batch(16, 8, seed=5)
    step = {"embeddings": z.bfloat16(), "batch": {"label": y, "attributes": s[:, None]}}
    fair = FairContrastive(attribute="style")
    fair._groups = AttributeGroups("style", 0, None)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.warns(UserWarning, match="self.log"):
        terms = {**FPRPenalty().loss_terms(L.LightningModule(), step), **fair.loss_terms(L.LightningModule(), step)}
    assert {name: value.dtype for name, value in terms.items()} == {
        "fpr_penalty": torch.float32, "fair_contrastive": torch.float32,
    }  # fmt: skip
    assert all(torch.isfinite(value) for value in terms.values())


def _fit_weights(tiny_overrides, tmp_path, callbacks: list, module_class: type = DMLModule) -> dict:
    cfg = compose_config(tiny_overrides)
    L.seed_everything(0)
    datamodule = DMLDataModule(cfg.data, seed=0)
    module = module_class.from_config(cfg, datamodule)
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=3, limit_val_batches=0, callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return {name: value.clone() for name, value in module.model.state_dict().items()}


@pytest.mark.parametrize("cls", [FPRPenalty, FairContrastive])
def test_strength_zero_trains_exactly_as_without_the_mitigation(tiny_overrides, tmp_path, cls):
    plain = _fit_weights(tiny_overrides, tmp_path, [])
    zero = _fit_weights(tiny_overrides, tmp_path, [cls(strength=0.0)])
    some = _fit_weights(tiny_overrides, tmp_path, [cls(strength=1.0)])
    assert all(torch.equal(plain[name], zero[name]) for name in plain)
    assert not all(torch.equal(plain[name], some[name]) for name in plain)


class _DropsTheTerms(DMLModule):
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        embeddings = self.model(batch["image"])
        return self.loss(embeddings, batch["label"])  # the registered terms are never called


@pytest.mark.parametrize("cls", [FPRPenalty, FairContrastive])
def test_a_host_that_never_calls_the_term_fails_at_the_first_step(tiny_overrides, tmp_path, cls):
    message = "_DropsTheTerms.training_step never called the loss term registered with add_loss_term"
    with pytest.raises(MitigationNotWiredError, match=re.escape(f"{cls.__name__} is not wired into _DropsTheTerms")):
        _fit_weights(tiny_overrides, tmp_path, [cls()], _DropsTheTerms)
    with pytest.raises(MitigationNotWiredError, match=re.escape(message)):
        _fit_weights(tiny_overrides, tmp_path, [cls()], _DropsTheTerms)


def test_an_attribute_the_data_lacks_is_named(tiny_overrides, tmp_path):
    with pytest.raises(ValueError, match=r"FairContrastive: attribute 'skin' is not in the data's attributes \["):
        _fit_weights(tiny_overrides, tmp_path, [FairContrastive(attribute="skin")])
