"""PARADE: gradient reversal, strength schedules, several attributes, checkpoints/resume, DDP and export."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import lightning as L
import pytest
import torch
from torch import nn

from fairdml.callbacks.instantiate import instantiate_callbacks
from fairdml.config import compose_config, to_container
from fairdml.data.datamodule import DMLDataModule
from fairdml.export import export_run
from fairdml.metrics.functional.decorrelation import (
    attribute_cka,
    correlation,
    fresh_decorrelation,
    normalised_cross_covariance,
)
from fairdml.mitigations.gradient_reversal import reverse_gradient
from fairdml.mitigations.parade import Parade
from fairdml.mitigations.parade_objectives import decorrelation_terms, scheduled_strength
from fairdml.models.embedding import load_embedding_model
from fairdml.models.module import DMLModule
from fairdml.train import run_training

PARADE = ["experiment=parade", "callbacks.parade.projection_hidden=16", "callbacks.parade.attribute_embedding_dim=8"]


# -- gradient reversal and the de-correlation game (hand-computed gradients) -------------------------------
def test_gradient_reversal_is_identity_forward_and_negated_scaled_backward():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 2.5)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 10.0, 100.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-2.5, -25.0, -250.0]))


# Toy batch of one: e_c = (0.6, 0.8), e_a = (0.8, 0.6), P = identity (a bias-free 2×2 linear map).
# corr = Σ_d (a_d p_d)² with p = normalize(P(normalize(e_c))) = e_c, so corr = 2 · 0.64 · 0.36 = 0.4608.
# g = ∂corr/∂p = 2 a² ⊙ p = (0.768, 0.576); both normalisations project it on the tangent plane at p:
# ∂corr/∂e_c = g − p (p·g) = (0.21504, −0.16128). Likewise ∂corr/∂e_a = (−0.16128, 0.21504).
CORR = 0.4608
DCORR_DCLASS = torch.tensor([[0.21504, -0.16128]])
DCORR_DATTR = torch.tensor([[-0.16128, 0.21504]])


def _toy(reverse_attribute_branch: bool, strength: float):
    class_embeddings = torch.tensor([[0.6, 0.8]], requires_grad=True)
    attribute_embeddings = torch.tensor([[0.8, 0.6]], requires_grad=True)
    projection = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        projection.weight.copy_(torch.eye(2))
    loss, corr = decorrelation_terms(
        class_embeddings, attribute_embeddings, projection, strength, reverse_attribute_branch
    )
    loss.backward()
    return class_embeddings, attribute_embeddings, projection, loss, corr


@pytest.mark.parametrize("strength", [0.5, 3.0])
def test_encoder_gets_reversed_scaled_gradient_and_projection_descends(strength):
    class_embeddings, attribute_embeddings, projection, loss, corr = _toy(True, strength)
    assert corr.item() == pytest.approx(CORR) and loss.item() == pytest.approx(-CORR)
    # P's loss is −corr; un-reversed, e_c would get −∂corr/∂e_c. Reversed and scaled by ρ′ it gets
    # +ρ′ ∂corr/∂e_c, so an encoder step (descent) lowers the correlation.
    assert torch.allclose(class_embeddings.grad, strength * DCORR_DCLASS, atol=1e-5)
    assert torch.allclose(attribute_embeddings.grad, strength * DCORR_DATTR, atol=1e-5)
    # P gets −∂corr/∂W = −(∂corr/∂P(e_c)) e_cᵀ whatever ρ′ is (it has its own learning rate)
    expected = -DCORR_DCLASS.T @ torch.tensor([[0.6, 0.8]])
    assert torch.allclose(projection.weight.grad, expected, atol=1e-5)


def test_attribute_branch_can_be_left_out_of_the_reversal():
    class_embeddings, attribute_embeddings, _, _, _ = _toy(False, 2.0)
    assert attribute_embeddings.grad is None
    assert torch.allclose(class_embeddings.grad, 2.0 * DCORR_DCLASS, atol=1e-5)


def test_one_step_each_way_moves_the_correlation_as_each_player_wants():
    """P's own SGD step raises corr; the encoder's step on the reversed gradient lowers it."""
    torch.manual_seed(0)
    class_embeddings = torch.randn(16, 6, requires_grad=True)
    attribute_embeddings = torch.randn(16, 4)
    projection = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))

    def corr_now() -> float:
        with torch.no_grad():
            return correlation(attribute_embeddings, projection(nn.functional.normalize(class_embeddings, dim=-1)))

    before = corr_now()
    loss, _ = decorrelation_terms(class_embeddings, attribute_embeddings, projection, 1.0)
    loss.backward()
    with torch.no_grad():
        for parameter in projection.parameters():
            parameter -= 0.05 * parameter.grad
    after_projection = corr_now()
    with torch.no_grad():
        class_embeddings -= 0.05 * class_embeddings.grad
    assert after_projection > before
    assert corr_now() < after_projection


@pytest.mark.parametrize("strength", [0.5, 3.0])
def test_confusion_objective_gradients_by_hand(strength):
    """Confusion: P still gets −∂corr/∂W; e_c gets ρ′ ∂spread/∂e_c through a frozen P; e_a gets nothing.

    Batch of two with P = identity: p_i = normalize(e_c,i), spread = 1 − ‖(p_1 + p_2)/2‖². For unit e_c,
    ∂spread/∂e_c,i = −(I − p_i p_iᵀ) m / 2 with m = p_1 + p_2 (the chain rule through the mean and the
    normalisation), here written out by hand.
    """
    c = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    a = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    class_embeddings, attribute_embeddings = c.clone().requires_grad_(), a.clone().requires_grad_()
    projection = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        projection.weight.copy_(torch.eye(2))
    loss, corr = decorrelation_terms(
        class_embeddings, attribute_embeddings, projection, strength, form="cosine", objective="confusion"
    )
    loss.backward()
    m = c.sum(dim=0)
    expected_class = torch.stack([-(torch.eye(2) - torch.outer(p, p)) @ m / 2 for p in c])
    assert torch.allclose(class_embeddings.grad, strength * expected_class, atol=1e-5)
    assert attribute_embeddings.grad is None
    # corr = mean_i ⟨a_i, p_i⟩; P's loss −corr: ∂/∂W = −mean_i (I − p_i p_iᵀ) a_i c_iᵀ (here |W c_i| = 1)
    expected_p = -sum(torch.outer((torch.eye(2) - torch.outer(p, p)) @ t, p) for p, t in zip(c, a)) / 2
    assert torch.allclose(projection.weight.grad, expected_p, atol=1e-5)
    spread = 1 - (m / 2).pow(2).sum()
    assert corr.item() == pytest.approx(float((a * c).sum(1).mean()))
    assert loss.item() == pytest.approx(strength * float(spread) - corr.item())


def test_confusion_steps_make_predictions_alike_and_reversal_does_not():
    """Against a fitted P, descent on confusion brings P to chance; descent on the reversed loss does not.

    Reversal lowers corr by moving e_c where P is wrong, and P's predictions still differ from sample to
    sample (information left); confusion makes them alike, so corr falls to (at most) the best constant guess.
    """
    torch.manual_seed(1)
    codes = torch.arange(32) % 2
    prototypes = nn.functional.normalize(torch.randn(2, 4), dim=-1)
    attribute = prototypes[codes]
    chance = float(prototypes.mean(0).norm())  # corr of the best constant prediction
    start = nn.functional.normalize(torch.randn(32, 6) + 2.0 * codes[:, None], dim=-1)  # e_c carries the group
    projection = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.Adam(projection.parameters(), lr=1e-2)
    for _ in range(200):  # fit P first
        optimizer.zero_grad()
        decorrelation_terms(start, attribute, projection, 0.0, form="cosine", objective="confusion")[0].backward()
        optimizer.step()
    results = {}
    for objective in ("reversal", "confusion"):
        embeddings = start.clone().requires_grad_()
        for _ in range(300):
            loss, _ = decorrelation_terms(embeddings, attribute, projection, 1.0, False, "cosine", objective)
            projection.zero_grad()
            embeddings.grad = None
            loss.backward()
            with torch.no_grad():
                embeddings -= 2.0 * embeddings.grad
        with torch.no_grad():
            predicted = nn.functional.normalize(projection(nn.functional.normalize(embeddings, dim=-1)), dim=-1)
            corr = float(correlation(attribute, predicted, "cosine"))
        results[objective] = (corr, float(1 - predicted.mean(0).pow(2).sum()))
    assert results["confusion"][1] < 0.01 and results["confusion"][0] <= chance  # no better than a constant
    assert results["reversal"][1] > 0.3  # P still tells samples apart


@pytest.mark.parametrize(("n", "dx", "dy"), [(8, 3, 2), (64, 16, 8), (200, 64, 64)])
def test_normalised_cross_covariance_is_linear_cka_and_only_its_numerator_has_gradient(n, dx, dy):
    """Reference: linear CKA in float64 with the centring matrix H, ‖YᵀHX‖² / (‖XᵀHX‖ ‖YᵀHY‖)."""
    generator = torch.Generator().manual_seed(n)
    x = torch.randn(n, dx, generator=generator)
    y = torch.randn(n, dy, generator=generator) + x[:, :1]  # partly dependent
    xd, yd, h = x.double(), y.double(), torch.eye(n, dtype=torch.float64) - 1.0 / n
    reference = (yd.T @ h @ xd).pow(2).sum() / ((xd.T @ h @ xd).norm() * (yd.T @ h @ yd).norm())
    x.requires_grad_()
    value = normalised_cross_covariance(x, y)
    assert value.item() == pytest.approx(reference.item(), rel=1e-4)
    assert normalised_cross_covariance(y, y).item() == pytest.approx(1.0, rel=1e-5)
    value.backward()
    xc, yc = xd - xd.mean(0), yd - yd.mean(0)
    # the denominator is a constant for the encoder: ∂/∂X = 2 Yc (Ycᵀ Xc) / (‖XcᵀXc‖ ‖YcᵀYc‖)
    expected = 2 * yc @ (yc.T @ xc) / ((xc.T @ xc).norm() * (yc.T @ yc).norm())
    assert torch.allclose(x.grad.double(), expected, rtol=1e-3, atol=1e-7)


def test_correlation_forms_squared_is_sign_blind_cosine_is_not():
    torch.manual_seed(0)
    attribute_embeddings = nn.functional.normalize(torch.randn(8, 5), dim=-1)
    squared = correlation(attribute_embeddings, attribute_embeddings)
    assert squared.item() == pytest.approx(correlation(attribute_embeddings, -attribute_embeddings).item())
    assert squared.item() == pytest.approx(attribute_embeddings.pow(4).sum(dim=-1).mean().item())
    assert correlation(attribute_embeddings, attribute_embeddings, "cosine").item() == pytest.approx(1.0)
    assert correlation(attribute_embeddings, -3 * attribute_embeddings, "cosine").item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="correlation form must be one of"):
        correlation(attribute_embeddings, attribute_embeddings, "pearson")


# -- strength schedules ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        ("constant", 0, 8.0),
        ("constant", 1000, 8.0),
        ("linear", 0, 0.0),
        ("linear", 25, 2.0),
        ("linear", 50, 4.0),
        ("linear", 100, 8.0),
        ("linear", 500, 8.0),
        ("cosine", 0, 0.0),
        ("cosine", 25, 8.0 * (1 - math.cos(math.pi / 4)) / 2),
        ("cosine", 50, 4.0),
        ("cosine", 100, 8.0),
        ("cosine", 101, 8.0),
    ],
)
def test_schedule_values(schedule, step, expected):
    assert scheduled_strength(8.0, schedule, 100, step) == pytest.approx(expected)


def test_bad_schedule_and_strengths_are_clear_errors():
    with pytest.raises(ValueError, match="schedule='exponential' must be one of"):
        Parade(schedule="exponential")
    with pytest.raises(ValueError, match=r"strength=\[1.0, 2.0\] must be one value, or one per attribute"):
        Parade(attributes=["style"], strength=[1.0, 2.0])
    with pytest.raises(ValueError, match=">= 0"):
        Parade(strength=-1.0)
    with pytest.raises(ValueError, match="encoder_objective='adversarial' must be one of"):
        Parade(encoder_objective="adversarial")


def test_attribute_cka_is_zero_for_equal_group_means_and_one_for_groups_only():
    codes = torch.arange(40) % 2
    directions = torch.eye(4)
    only_groups = directions[codes]  # e_c varies only between the groups
    assert attribute_cka(only_groups, codes) == pytest.approx(1.0, abs=1e-5)
    within = directions[2 + (torch.arange(40) // 2) % 2]  # varies only within each group
    assert attribute_cka(within, codes) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("n", "dx", "dy"), [(8, 3, 2), (64, 16, 8)])
def test_kernel_cka_matches_a_float64_brute_force(n, dx, dy):
    """Reference: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with K_ij = exp(−‖x_i − x_j‖² / median), L = YYᵀ."""
    generator = torch.Generator().manual_seed(n)
    x = torch.randn(n, dx, generator=generator)
    y = torch.randn(n, dy, generator=generator) + x[:, :1].pow(2)  # dependent, but not linearly
    xd, yd, h = x.double(), y.double(), torch.eye(n, dtype=torch.float64) - 1.0 / n
    squared = torch.tensor([[float((a - b).pow(2).sum()) for b in xd] for a in xd], dtype=torch.float64)
    k = torch.exp(-squared / squared.median())
    lin = yd @ yd.T

    def hsic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.trace(a @ h @ b @ h)

    reference = hsic(k, lin) / (hsic(k, k) * hsic(lin, lin)).sqrt()
    assert normalised_cross_covariance(x, y, "rbf").item() == pytest.approx(reference.item(), rel=1e-4)


@pytest.mark.parametrize("strength", [0.5, 4.0])
def test_covariance_objective_is_cka_with_the_group_means_of_e_a(strength):
    """Loss = ρ′ · CKA(ê_c, ē_a) − corr, ē_a_i = mean of ê_a over i's group; e_a and P's output untouched."""
    torch.manual_seed(0)
    codes = torch.tensor([0, 1, 1, 2, 0, 1, 2, 2, 0, 1])
    class_embeddings = torch.randn(10, 6, requires_grad=True)
    attribute_embeddings = torch.randn(10, 4, requires_grad=True)
    projection = nn.Linear(6, 4)
    loss, corr = decorrelation_terms(
        class_embeddings, attribute_embeddings, projection, strength, form="cosine", objective="covariance",
        codes=codes,
    )  # fmt: skip
    unit = nn.functional.normalize(attribute_embeddings.detach(), dim=-1)
    group_means = torch.stack([unit[codes == int(c)].mean(0) for c in codes])
    cka = normalised_cross_covariance(nn.functional.normalize(class_embeddings.detach(), dim=-1), group_means)
    assert loss.item() == pytest.approx(strength * cka.item() - corr.item(), rel=1e-5)
    loss.backward()
    assert attribute_embeddings.grad is None and class_embeddings.grad.abs().sum() > 0


# -- several attributes, wired into a module ---------------------------------------------------------------
def _module(overrides: list[str]) -> tuple[DMLModule, DMLModule]:
    cfg = compose_config(overrides)
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    datamodule.setup()
    return DMLModule(to_container(cfg), 100, datamodule.group_names, datamodule.group_attribute), datamodule


def test_several_attributes_each_with_its_own_strength_and_schedule(tiny_overrides):
    module, _ = _module([*tiny_overrides, *PARADE])
    parade = Parade(
        attributes=["style", "ink"], strength=[2.0, 6.0], schedule="linear", warmup_steps=10,
        projection_hidden=16, attribute_embedding_dim=8,
    )  # fmt: skip
    parade.attach(module, ["style", "ink"], [2, 3])
    parade.attach(module, ["style", "ink"], [2, 3])  # idempotent: a second `setup` adds nothing
    assert sorted(module.auxiliary) == sorted(
        f"parade_{a}_{part}" for a in ("style", "ink") for part in ("head", "projection", "loss")
    )
    assert module._auxiliary_lr["parade_ink_projection"] == parade.hparams.projection_lr
    parade.step = 5
    assert parade.current_strengths() == pytest.approx([1.0, 3.0])

    torch.manual_seed(0)
    features = torch.randn(12, 16, requires_grad=True)  # test_resnet's feature size is not needed here
    module.auxiliary["parade_style_head"] = nn.Sequential(nn.Linear(16, 8))
    module.auxiliary["parade_ink_head"] = nn.Sequential(nn.Linear(16, 8))
    embeddings = torch.randn(12, module.config["model"]["embedding_dim"], requires_grad=True)
    batch = {"attributes": torch.stack([torch.arange(12) % 2, torch.arange(12) % 3], dim=1)}
    terms = parade.loss_terms(module, {"features": features, "embeddings": embeddings, "batch": batch})
    assert set(terms) == {"parade_attr_style", "parade_dec_style", "parade_attr_ink", "parade_dec_ink"}

    # each attribute's reversed gradient on e_c is its own ρ′(t) times ∂corr/∂e_c (recomputed un-reversed)
    for name, strength in (("style", 1.0), ("ink", 3.0)):
        (grad,) = torch.autograd.grad(terms[f"parade_dec_{name}"], embeddings, retain_graph=True)
        reference = embeddings.detach().clone().requires_grad_(True)
        projection = module.auxiliary[f"parade_{name}_projection"]
        attribute_embeddings = module.auxiliary[f"parade_{name}_head"](features).detach()
        corr = correlation(attribute_embeddings, projection(nn.functional.normalize(reference, dim=-1)))
        (expected,) = torch.autograd.grad(corr, reference)
        assert expected.abs().sum() > 0
        assert torch.allclose(grad, strength * expected, atol=1e-6), name


def test_extra_projection_steps_fit_p_to_the_batch_and_are_checkpointed(tiny_overrides):
    module, _ = _module([*tiny_overrides, *PARADE])
    parade = Parade(projection_hidden=16, attribute_embedding_dim=8, projection_steps=20, projection_lr=1e-2)
    parade.attach(module, ["style"], [2])
    module.auxiliary["parade_style_head"] = nn.Linear(16, 8)
    torch.manual_seed(0)
    codes = torch.arange(32) % 2
    # e_c carries the attribute: P can learn to predict e_a from it
    embeddings = nn.functional.normalize(torch.randn(32, 64) + 3.0 * codes[:, None].float(), dim=-1)
    features = torch.randn(32, 16) + 3.0 * codes[:, None].float()
    step = {
        "features": features,
        "embeddings": embeddings.requires_grad_(),
        "batch": {"attributes": codes[:, None]},
    }
    projection = module.auxiliary["parade_style_projection"]
    before = {k: v.clone() for k, v in projection.state_dict().items()}
    first = parade.loss_terms(module, step)["parade_dec_style"].item()
    assert any(not torch.equal(before[k], v) for k, v in projection.state_dict().items())
    assert all(p.grad is None for p in projection.parameters())  # the main optimiser's gradients are untouched
    second = parade.loss_terms(module, step)["parade_dec_style"].item()
    assert second < first  # P's loss (−corr) went down: the extra steps fitted P
    saved = parade.state_dict()["projection_optimizers"]["style"]
    assert saved["state"] and saved["param_groups"][0]["lr"] == 1e-2
    restored = Parade(projection_hidden=16, attribute_embedding_dim=8, projection_steps=20, projection_lr=1e-2)
    restored.load_state_dict(parade.state_dict())
    assert restored._pending_optimizer_states["style"]["state"].keys() == saved["state"].keys()
    with pytest.raises(ValueError, match="projection_steps=0 must be >= 1"):
        Parade(projection_steps=0)


def test_unknown_attribute_names_the_valid_ones(tiny_overrides):
    module, _ = _module([*tiny_overrides, *PARADE])
    with pytest.raises(ValueError, match=r"not in the data's attributes \['style'\]"):
        Parade(attributes=["skin"]).attach(module, ["style"], [2])


# -- training, checkpoints and resume ------------------------------------------------------------------------
class _StateAtTrainStart(L.Callback):
    """Records what PARADE's state is when (resumed) training starts, before any step."""

    def on_train_start(self, trainer, pl_module):
        parade = next(c for c in trainer.callbacks if isinstance(c, Parade))
        optimizer = trainer.optimizers[0]
        projection = [g for g in optimizer.param_groups if g["name"] == "parade_style_projection"][0]
        self.seen = {
            "step": parade.step,
            "strength": parade.current_strengths()[0],
            "projection": {
                k: v.clone() for k, v in pl_module.auxiliary["parade_style_projection"].state_dict().items()
            },
            "projection_lr": projection["initial_lr"] if "initial_lr" in projection else projection["lr"],
            "adam_steps": [float(optimizer.state[p]["step"]) for p in projection["params"] if p in optimizer.state],
        }


def _fit(cfg, module, datamodule, ckpt_path=None, callbacks=()):
    parade = instantiate_callbacks(cfg.callbacks)[0]
    trainer_cfg = {**to_container(cfg.trainer), "limit_val_batches": 0, "num_sanity_val_steps": 0}
    trainer = L.Trainer(
        **trainer_cfg, logger=False, use_distributed_sampler=False, default_root_dir=str(cfg.run_dir),
        callbacks=[parade, *callbacks],
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, parade


def test_resume_continues_with_the_same_parade_state(tiny_overrides, tmp_path):
    overrides = [
        *tiny_overrides, *PARADE, "callbacks.parade.schedule=linear", "callbacks.parade.warmup_steps=100",
        "callbacks.parade.strength=8", f"run_dir={tmp_path}", "trainer.max_epochs=1",
    ]  # fmt: skip
    cfg = compose_config(overrides)
    module, datamodule = _module(overrides)
    trainer, parade = _fit(cfg, module, datamodule)
    steps = trainer.global_step
    assert parade.step == steps > 0
    checkpoint_path = tmp_path / "one_epoch.ckpt"
    trainer.save_checkpoint(checkpoint_path)
    saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    assert saved["callbacks"]["Parade"]["step"] == steps
    assert any(k.startswith("auxiliary.parade_style_projection.") for k in saved["state_dict"])

    cfg2 = compose_config([*overrides, "trainer.max_epochs=2"])
    fresh, datamodule2 = _module(overrides)
    probe = _StateAtTrainStart()
    trainer2, parade2 = _fit(cfg2, fresh, datamodule2, ckpt_path=str(checkpoint_path), callbacks=[probe])
    seen = probe.seen
    assert seen["step"] == steps
    assert seen["strength"] == pytest.approx(8.0 * steps / 100)
    for key, value in seen["projection"].items():
        assert torch.equal(value, saved["state_dict"][f"auxiliary.parade_style_projection.{key}"]), key
    assert seen["projection_lr"] == pytest.approx(cfg.callbacks.parade.projection_lr)
    assert seen["adam_steps"] and all(s == steps for s in seen["adam_steps"])  # optimiser state came back
    assert parade2.step == trainer2.global_step == 2 * steps


def test_run_logs_parade_losses_and_strength_and_export_drops_heads(tiny_overrides, tmp_path, capsys):
    run_dir = tmp_path / "run"
    overrides = [
        *tiny_overrides,
        *PARADE,
        "callbacks.parade.strength=3",
        "trainer.log_every_n_steps=1",
        f"run_dir={run_dir}",
    ]
    run_training(compose_config(overrides))
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in (
        "parade/style/strength", "parade/style/correlation", "parade/style/attribute_loss",
        "train/loss_parade_attr_style", "train/loss_parade_dec_style",
    ):  # fmt: skip
        assert column in header, column

    measured = json.loads((run_dir / "report.json").read_text())["mitigations"]["parade"]["measured"]["style"]
    assert 0.0 <= measured["decorrelation_chance"] <= measured["decorrelation_ceiling"] + 1e-4 <= 1.0 + 1e-4
    assert 0.0 <= measured["decorrelation"] <= 1.0
    # a tiny run's e_a can be constant on the test split: then the share is undefined and written as null
    assert measured["shared"] is None or math.isfinite(measured["shared"])
    assert measured["strength"] == 3.0 and measured["n"] == json.loads((run_dir / "report.json").read_text())["n"]

    written = export_run(str(run_dir), str(tmp_path / "exported.pt"))
    said = capsys.readouterr().out
    assert "dropped training-only heads" in said
    assert "'parade_style_head'" in said and "'parade_style_projection'" in said
    saved = torch.load(written, map_location="cpu", weights_only=True)
    assert not [k for k in saved["state_dict"] if "parade" in k or "auxiliary" in k]

    # the exported model (no callback needed to load it) embeds like the training module
    checkpoint = json.loads((run_dir / "report.json").read_text())["meta"]["best_checkpoint"]
    raw = torch.load(run_dir / checkpoint, map_location="cpu", weights_only=True)
    module = DMLModule(**raw["hyper_parameters"])
    parade = instantiate_callbacks(raw["hyper_parameters"]["config"]["callbacks"])[0]
    parade.attach(module, ["style"], [2])
    module.load_state_dict(raw["state_dict"])  # strict: the heads exist again only through the callback
    module.eval()
    exported = load_embedding_model(written)
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(exported(images), module(images), atol=1e-6)
        # … and the run's own model.pt, written at the end of training, is the same model
        assert torch.allclose(load_embedding_model(run_dir / "model.pt")(images), module(images), atol=1e-6)


def test_ddp_two_cpu_processes(tiny_overrides, tmp_path):
    run_dir = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "fairdml", "train", *tiny_overrides, *PARADE, "callbacks.parade.strength=2",
        "callbacks.parade.projection_steps=3",  # the extra P steps all-reduce their gradients by hand
        "trainer.strategy=ddp", "trainer.accelerator=cpu", "trainer.devices=2", f"run_dir={run_dir}",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["callbacks"]["Parade"]["step"] == saved["global_step"] > 0
    assert saved["callbacks"]["Parade"]["projection_optimizers"]["style"]["state"]
    assert any(k.startswith("auxiliary.parade_style_head.") for k in saved["state_dict"])
    assert json.loads((run_dir / "report.json").read_text())["groups"]["minority"]["recall@1"] is not None


# -- the de-correlation achieved, measured afresh ------------------------------------------------------------
def test_fresh_decorrelation_sees_shared_information_and_not_its_absence():
    torch.manual_seed(0)
    attribute = torch.randn(400, 4)
    shared = torch.cat([attribute, torch.randn(400, 4)], dim=1)  # e_c carries e_a
    independent = torch.randn(400, 8)
    related = fresh_decorrelation(shared, attribute, hidden=32, steps=300, lr=1e-2)
    unrelated = fresh_decorrelation(independent, attribute, hidden=32, steps=300, lr=1e-2)
    assert related["chance"] < related["correlation"] <= related["ceiling"] + 0.02
    assert related["shared"] > 0.6
    assert abs(unrelated["shared"]) < 0.15
    # the constant and the e_a-fed predictors do not depend on e_c
    assert related["chance"] == pytest.approx(unrelated["chance"])
    assert related["ceiling"] == pytest.approx(unrelated["ceiling"])


def test_fresh_decorrelation_holds_whole_classes_out():
    """e_a is a per-class constant and e_c a per-class random code: no shared direction, only class identity.

    Split by sample, P learns class → e_a and looks fully correlated; held out by class it is at chance.
    """
    torch.manual_seed(0)
    labels = torch.arange(40).repeat_interleave(10)
    groups = (torch.arange(40) % 2)[labels]
    attribute = torch.randn(2, 4)[groups] + 0.3 * torch.randn(40, 4)[labels]
    class_codes = torch.randn(40, 8)[labels] + 0.1 * torch.randn(400, 8)
    by_sample = fresh_decorrelation(class_codes, attribute, hidden=32, steps=300, lr=1e-2)
    by_class = fresh_decorrelation(class_codes, attribute, labels=labels, groups=groups, hidden=32, steps=300, lr=1e-2)
    assert by_sample["split"] == "sample" and by_sample["shared"] > 0.8
    assert by_class["split"] == "class" and by_class["shared"] < 0.3
