"""PARADE (Dullerud et al., ICLR 2022) as a Lightning callback: partial attribute de-correlation.

Added to any DMLModule, it puts a second embedding head e_a on the backbone features for each sensitive
attribute (trained with a DML loss on the attribute's labels) and de-correlates the class embedding e_c
from it adversarially, as in MIC/DiVA: a projection network P learns to predict e_a from e_c, and a
gradient-reversal layer makes the encoder ascend what P descends.

Strength parametrisation (the one knob, `strength` = ρ′): the correlation is a **sum over dimensions**,
    corr = mean_batch Σ_d ( e_a ⊙ normalize(P(e_c)) )_d² ,   L_dec = −ρ′ · corr .
MIC/DiVA/the paper write it as a mean over dimensions with weight ρ; both are the same when ρ′ = ρ / D
(D = attribute embedding size), e.g. ρ = 2048 at D = 128 is ρ′ = 16.

How the two players see L_dec: P descends −corr with its own learning rate (`projection_lr`), whatever ρ′
is, so the adversary is trained from step 0 even while ρ′ warms up; the encoder receives ρ′(t) times the
reversed gradient, i.e. it descends +ρ′ · corr. With Adam this equals MIC's single weighted term.

`encoder_objective: confusion` (fairdml's option, not the paper's) changes only what the encoder descends:
instead of P's reversed loss (whose minimum, for the encoder, is a P that is confidently *wrong*, so the
attribute stays in e_c with its sign flipped), ρ′ times the spread of P's normalised predictions over the
batch, 1 − ‖mean_b normalize(P(e_c))‖², which is 0 exactly when P predicts the same for everyone and so
knows nothing of the sample (domain confusion, Tzeng et al. 2015, in PARADE's regression form).
`encoder_objective: covariance` (fairdml's option) drops the game for the encoder: it descends ρ′ times the
batch's linear CKA of e_c and ē_a, ‖C_cā‖²_F / (‖C_cc‖_F ‖C_āā‖_F) in [0, 1], where ē_a is e_a averaged over
the batch's samples with the same attribute value (the attribute's part of e_a) and the norms in the
denominator are held constant, so the encoder cannot lower it by reshaping its own spread. Linear
dependence, computed in closed form every batch: there is no lagging adversary to dodge.
`kernel_covariance` is the same with a Gaussian kernel on e_c (any dependence, HSIC). P is still trained
(on detached embeddings) and logged with every objective, and measures the de-correlation at test time.

Nothing of this reaches the exported model: the heads live in `DMLModule.auxiliary`, which export drops.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from fairdml.callbacks.gradient_reversal import reverse_gradient
from fairdml.losses import create_loss, create_miner
from fairdml.metrics.fairness import drop_duplicate_indices
from fairdml.metrics.functional.leakage import held_out_split
from fairdml.models.backbones import feature_dim
from fairdml.models.heads import EmbeddingHead

log = logging.getLogger("fairdml")

SCHEDULES = ("constant", "linear", "cosine")


def projection_network(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """P: linear D→h, ReLU, linear h→D′ (MIC's adversarial projection; h = 512 there)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


CORRELATION_FORMS = ("squared", "cosine")
ENCODER_OBJECTIVES = ("reversal", "confusion", "covariance", "kernel_covariance")


def correlation(
    attribute_embeddings: torch.Tensor, predicted: torch.Tensor, form: str = "squared"
) -> torch.Tensor:
    """(B, D′), (B, D′) → (); both sides L2-normalised.

    "squared" (MIC/DiVA, the paper): mean_batch Σ_d (e_a ⊙ normalize(P(e_c)))_d². It is blind to signs, so
    a binary attribute whose two e_a clusters differ mostly in sign gives P little to predict.
    "cosine" (fairdml's option): mean_batch ⟨e_a, normalize(P(e_c))⟩, which sees the sign.
    """
    if form not in CORRELATION_FORMS:
        raise ValueError(f"parade.correlation must be one of {CORRELATION_FORMS}, got {form!r}")
    products = F.normalize(attribute_embeddings, dim=-1) * F.normalize(predicted, dim=-1)
    return (products.pow(2) if form == "squared" else products).sum(dim=-1).mean()


def decorrelation_terms(
    class_embeddings: torch.Tensor,
    attribute_embeddings: torch.Tensor,
    projection: nn.Module,
    strength: float,
    reverse_attribute_branch: bool = True,
    form: str = "squared",
    objective: str = "reversal",
    codes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the de-correlation loss, raw corr). P always descends −corr.

    "reversal" (MIC): the encoder(s) get ρ′ × the reversed gradient of −corr. `reverse_attribute_branch`:
    MIC reverses both branches (the attribute head is also pushed away from what P predicts); False
    detaches e_a here, so only e_c is de-correlated.
    "confusion": P learns on detached embeddings; e_c descends ρ′ × the spread of the predictions of a
    frozen copy of P (see the module docstring); e_a is left alone.
    "covariance": P learns on detached embeddings; e_c descends ρ′ × linear CKA(e_c, ē_a) (module docstring),
    ē_a = e_a averaged over the batch's samples with the same attribute value (`codes`), so that only the
    attribute's part of e_a counts, not what e_a happens to share with the class.
    "kernel_covariance": the same with a Gaussian kernel on e_c (`normalised_cross_covariance`).
    """
    if objective not in ENCODER_OBJECTIVES:
        raise ValueError(f"parade.encoder_objective must be one of {ENCODER_OBJECTIVES}, got {objective!r}")
    class_in = F.normalize(class_embeddings, dim=-1)
    target = F.normalize(attribute_embeddings, dim=-1)
    if objective == "reversal":
        class_in = reverse_gradient(class_in, strength)
        target = reverse_gradient(target, strength) if reverse_attribute_branch else target.detach()
        corr = correlation(target, projection(class_in), form)
        return -corr, corr.detach()
    # The other objectives: P learns on detached embeddings; the encoder's term is separate and weighted.
    target = target.detach()
    corr = correlation(target, projection(class_in.detach()), form)
    if objective == "confusion":
        frozen = {name: parameter.detach() for name, parameter in projection.named_parameters()}
        predicted = F.normalize(torch.func.functional_call(projection, frozen, (class_in,)), dim=-1)
        encoder_term = 1.0 - predicted.mean(dim=0).pow(2).sum()  # spread of P's predictions
    else:
        if codes is not None:
            target = _group_means(target, codes)
        kernel = "rbf" if objective == "kernel_covariance" else "linear"
        encoder_term = normalised_cross_covariance(class_in, target, kernel)
    return strength * encoder_term - corr, corr.detach()


def _group_means(values: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Each row replaced by the mean of the rows with the same code."""
    members = F.one_hot(codes.long()).to(values.dtype)  # (B, values)
    return members @ ((members.T @ values) / members.sum(dim=0).clamp_min(1)[:, None])


def normalised_cross_covariance(x: torch.Tensor, y: torch.Tensor, kernel: str = "linear") -> torch.Tensor:
    """CKA of x and y over the batch; the denominator carries no gradient.

    "linear": ‖C_xy‖²_F / (‖C_xx‖_F ‖C_yy‖_F), dependence through second moments only. "rbf": x through a
    Gaussian kernel (bandwidth: the median squared distance, held constant), y linear, so any dependence of
    x on y counts (HSIC, Gretton et al. 2005), not only the groups' mean difference.
    """
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    if kernel == "linear":
        cross = (x.T @ y).pow(2).sum()
        scale = ((x.T @ x).pow(2).sum() * (y.T @ y).pow(2).sum()).sqrt().detach()
        return cross / scale.clamp_min(1e-12)
    distances = torch.cdist(x, x).pow(2)
    gram_x = torch.exp(-distances / distances.detach().median().clamp_min(1e-12))
    gram_x = gram_x - gram_x.mean(dim=0) - gram_x.mean(dim=1, keepdim=True) + gram_x.mean()  # H K H
    gram_y = y @ y.T  # already centred
    cross = (gram_x * gram_y).sum()
    scale = ((gram_x * gram_x).sum() * (gram_y * gram_y).sum()).sqrt().detach()
    return cross / scale.clamp_min(1e-12)


def attribute_cka(class_embeddings: torch.Tensor, codes: torch.Tensor) -> float:
    """Linear CKA of e_c with the attribute's one-hot codes: the share of e_c's covariance that the groups'
    mean differences explain (0 = equal group means, 1 = e_c varies only between groups). No fitting, so
    on the test split (unseen classes) it needs no held-out part of its own."""
    members = F.one_hot(codes.long()).to(class_embeddings.dtype)
    return float(normalised_cross_covariance(F.normalize(class_embeddings.float(), dim=-1), members.float()))


def scheduled_strength(strength: float, schedule: str, warmup_steps: int, step: int) -> float:
    """ρ′(step): constant; or ramped from 0 to ρ′ over `warmup_steps`, linearly or along a half cosine."""
    if schedule not in SCHEDULES:
        raise ValueError(f"parade.schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "constant" or warmup_steps <= 0:
        return float(strength)
    progress = min(max(step, 0) / warmup_steps, 1.0)
    if schedule == "linear":
        return float(strength) * progress
    return float(strength) * 0.5 * (1.0 - math.cos(math.pi * progress))


@dataclass
class _AttributeParts:
    name: str  # attribute name in the data
    key: str  # ModuleDict-safe name
    column: int  # index in batch["attributes"]
    strength: float


class Parade(L.Callback):
    """Attribute heads + adversarial de-correlation of the class embedding, one set per attribute."""

    def __init__(
        self,
        attributes: list[str] | str = ("style",),
        strength: float | list[float] = 4.0,
        schedule: str = "constant",
        warmup_steps: int = 0,
        projection_hidden: int = 512,
        projection_lr: float = 1e-3,
        attribute_embedding_dim: int = 64,
        attribute_loss: str = "margin",
        attribute_loss_kwargs: dict[str, Any] | None = None,
        attribute_miner: str | None = "distance_weighted",
        attribute_miner_kwargs: dict[str, Any] | None = None,
        attribute_loss_weight: float = 1.0,
        attribute_through_backbone: bool = True,
        reverse_attribute_branch: bool = True,
        attribute_lr: float | None = None,
        projection_steps: int = 1,
        correlation: str = "squared",
        encoder_objective: str = "reversal",
        measure_steps: int = 500,
    ):
        super().__init__()
        self.attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        if not self.attributes:
            raise ValueError("parade.attributes is empty; name at least one sensitive attribute")
        strengths = (
            list(strength) if isinstance(strength, list | tuple) else [strength] * len(self.attributes)
        )
        if len(strengths) != len(self.attributes):
            raise ValueError(
                f"parade.strength has {len(strengths)} values for {len(self.attributes)} attributes "
                f"{self.attributes}; give one value for all or one per attribute"
            )
        if any(s < 0 for s in strengths):
            raise ValueError(f"parade.strength must be >= 0, got {strengths}")
        scheduled_strength(0.0, schedule, warmup_steps, 0)  # validates the schedule name
        self.strengths = [float(s) for s in strengths]
        self.schedule, self.warmup_steps = schedule, int(warmup_steps)
        self.projection_hidden, self.projection_lr = projection_hidden, projection_lr
        self.attribute_embedding_dim = attribute_embedding_dim
        self.attribute_loss, self.attribute_loss_kwargs = attribute_loss, dict(attribute_loss_kwargs or {})
        self.attribute_miner, self.attribute_miner_kwargs = (
            attribute_miner,
            dict(attribute_miner_kwargs or {}),
        )
        self.attribute_loss_weight = attribute_loss_weight
        self.attribute_through_backbone = attribute_through_backbone
        self.reverse_attribute_branch = reverse_attribute_branch
        self.attribute_lr = attribute_lr
        if projection_steps < 1:
            raise ValueError(f"parade.projection_steps must be >= 1, got {projection_steps}")
        self.projection_steps = int(projection_steps)
        if correlation not in CORRELATION_FORMS:
            raise ValueError(f"parade.correlation must be one of {CORRELATION_FORMS}, got {correlation!r}")
        self.correlation_form = correlation
        if encoder_objective not in ENCODER_OBJECTIVES:
            raise ValueError(
                f"parade.encoder_objective must be one of {ENCODER_OBJECTIVES}, got {encoder_objective!r}"
            )
        self.encoder_objective = encoder_objective
        self.measure_steps = int(measure_steps)
        self._projection_optimizers: dict[str, torch.optim.Optimizer] = {}
        self._pending_optimizer_states: dict[str, dict] = {}
        self.step = 0  # training batches seen: drives the schedule, saved in checkpoints
        self._parts: list[_AttributeParts] = []
        self._miners: dict[str, nn.Module | None] = {}
        self._attached_to: int | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> Parade:
        """Build from the plain-dict `parade` config (fairdml.config.ParadeConfig); `enabled` is ignored."""
        cfg = {k: v for k, v in cfg.items() if k != "enabled"}
        return cls(**cfg)

    # -- wiring ------------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        view = trainer.datamodule.views["train"]
        self.attach(pl_module, list(view.attribute_names), [len(v) for v in view.attribute_values])

    def attach(
        self, pl_module: L.LightningModule, attribute_names: list[str], value_counts: list[int]
    ) -> None:
        """Add heads, projections and losses to `pl_module` (before optimisers and DDP exist); idempotent."""
        if self._attached_to == id(pl_module):
            return
        unknown = [a for a in self.attributes if a not in attribute_names]
        if unknown:
            raise ValueError(f"parade.attributes {unknown} not in the data's attributes {attribute_names}")
        optim_cfg = pl_module.config["optim"]
        head_lr = self.attribute_lr if self.attribute_lr is not None else optim_cfg["lr"]
        class_dim = pl_module.config["model"]["embedding_dim"]
        features = feature_dim(pl_module.model.backbone)
        self._parts = []
        for name, strength in zip(self.attributes, self.strengths, strict=True):
            key = "".join(c if c.isalnum() else "_" for c in name)
            column = attribute_names.index(name)
            if f"parade_{key}_head" not in pl_module.auxiliary:  # e.g. a second `setup` for testing
                pl_module.add_auxiliary(
                    f"parade_{key}_head", EmbeddingHead(features, self.attribute_embedding_dim), head_lr
                )
                pl_module.add_auxiliary(
                    f"parade_{key}_projection",
                    projection_network(class_dim, self.projection_hidden, self.attribute_embedding_dim),
                    self.projection_lr,
                )
                loss = create_loss(
                    self.attribute_loss, value_counts[column], self.attribute_embedding_dim,
                    **self.attribute_loss_kwargs,
                )  # fmt: skip
                # A loss with parameters (learnable margin beta, proxies) is trained like the main loss's.
                pl_module.add_auxiliary(f"parade_{key}_loss", loss, optim_cfg["loss_lr"])
            self._miners[key] = create_miner(self.attribute_miner, **self.attribute_miner_kwargs)
            self._parts.append(_AttributeParts(name, key, column, strength))
        pl_module.add_loss_term(self.loss_terms)
        self._attached_to = id(pl_module)

    # -- the loss ----------------------------------------------------------------------------------
    def current_strengths(self) -> list[float]:
        return [scheduled_strength(s, self.schedule, self.warmup_steps, self.step) for s in self.strengths]

    def loss_terms(self, pl_module: L.LightningModule, step: dict) -> dict[str, torch.Tensor]:
        """L_attr(e_a) (weighted) and P's loss −corr per attribute; the encoder feels +ρ′·corr (see top)."""
        features = step["features"] if self.attribute_through_backbone else step["features"].detach()
        attributes = step["batch"]["attributes"]
        batch_size = len(attributes)
        terms: dict[str, torch.Tensor] = {}
        for part, strength in zip(self._parts, self.current_strengths(), strict=True):
            codes = attributes[:, part.column]
            attribute_embeddings = pl_module.auxiliary[f"parade_{part.key}_head"](features)
            miner = self._miners[part.key]
            pairs = miner(attribute_embeddings, codes) if miner is not None else None
            attribute_loss = pl_module.auxiliary[f"parade_{part.key}_loss"](
                attribute_embeddings, codes, pairs
            )
            projection = pl_module.auxiliary[f"parade_{part.key}_projection"]
            if self.projection_steps > 1:
                self._train_projection(part.key, projection, step["embeddings"], attribute_embeddings)
            projection_loss, corr = decorrelation_terms(
                step["embeddings"], attribute_embeddings, projection, strength, self.reverse_attribute_branch,
                self.correlation_form, self.encoder_objective, codes,
            )  # fmt: skip
            terms[f"parade_attr_{part.key}"] = self.attribute_loss_weight * attribute_loss
            terms[f"parade_dec_{part.key}"] = projection_loss
            pl_module.log(f"parade/{part.key}/correlation", corr, batch_size=batch_size)
            pl_module.log(f"parade/{part.key}/strength", strength, batch_size=batch_size)
            pl_module.log(f"parade/{part.key}/attribute_loss", attribute_loss.detach(), batch_size=batch_size)
        return terms

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.step += 1

    # -- state in checkpoints ----------------------------------------------------------------------
    def _train_projection(
        self,
        key: str,
        projection: nn.Module,
        class_embeddings: torch.Tensor,
        attribute_embeddings: torch.Tensor,
    ) -> None:
        """`projection_steps − 1` extra updates of P on this batch's (detached) embeddings.

        Why: with one update per batch, P lags the encoder, which then only dodges the current P while
        the attribute stays in e_c for a fresh P to find (a GAN-style k-step adversary keeps P fitted).
        Gradients are taken with `autograd.grad` (no DDP hooks fire) and averaged over processes by hand,
        so P stays identical on every rank. Its own Adam; its state is saved with the callback's.
        """
        parameters = list(projection.parameters())
        if key not in self._projection_optimizers:
            optimizer = torch.optim.Adam(parameters, lr=self.projection_lr)
            if key in self._pending_optimizer_states:
                optimizer.load_state_dict(self._pending_optimizer_states.pop(key))
            self._projection_optimizers[key] = optimizer
        optimizer = self._projection_optimizers[key]
        inputs = F.normalize(class_embeddings.detach(), dim=-1)
        targets = attribute_embeddings.detach()
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        for _ in range(self.projection_steps - 1):
            loss = -correlation(targets, projection(inputs), self.correlation_form)
            gradients = torch.autograd.grad(loss, parameters)
            for parameter, gradient in zip(parameters, gradients, strict=True):
                if distributed:
                    torch.distributed.all_reduce(gradient)
                    gradient /= torch.distributed.get_world_size()
                parameter.grad = gradient
            optimizer.step()
            for parameter in parameters:
                parameter.grad = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "attributes": list(self.attributes),
            "strengths": list(self.strengths),
            "projection_optimizers": {k: o.state_dict() for k, o in self._projection_optimizers.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("attributes") != self.attributes:
            raise ValueError(
                f"checkpoint's PARADE attributes {state_dict.get('attributes')} differ from the config's "
                f"{self.attributes}; resume with the same parade.attributes"
            )
        if state_dict.get("strengths") != self.strengths:
            log.warning(
                "parade: strengths changed on resume: %s -> %s", state_dict.get("strengths"), self.strengths
            )
        self.step = int(state_dict["step"])
        self._projection_optimizers = {}
        self._pending_optimizer_states = dict(state_dict.get("projection_optimizers", {}))

    # -- the de-correlation achieved, measured on the test split -------------------------------------
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._test_batches: list[dict[str, Any]] = []

    @torch.no_grad()
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        # `outputs` is DMLModule.test_step's: the backbone ran once for the metric and for the heads here
        self._test_batches.append({
            "index": batch["index"], "label": batch["label"], "attributes": batch["attributes"],
            "class": outputs["embeddings"],
            "attribute": list(self.attribute_embeddings(pl_module, features=outputs["features"]).values()),
        })  # fmt: skip

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Add `parade` to the test report: per attribute, fresh P's held-out correlation (see below)."""
        batches, self._test_batches = self._test_batches, []
        if not batches or "test" not in getattr(pl_module, "reports", {}):
            return

        # DDP pads the last shard with repeated samples: keep each index once
        keep = drop_duplicate_indices(_gather(pl_module, torch.cat([b["index"] for b in batches])).cpu())

        def gathered(key: str, i: int | None = None) -> torch.Tensor:
            values = torch.cat([b[key] if i is None else b[key][i] for b in batches])
            return _gather(pl_module, values).cpu()[keep]

        class_embeddings, labels, attributes = gathered("class"), gathered("label"), gathered("attributes")
        seed = int(pl_module.config.get("seed", 0))
        measured = {}
        for i, (part, strength) in enumerate(zip(self._parts, self.current_strengths(), strict=True)):
            attribute_embeddings = gathered("attribute", i)
            held_out = {"labels": labels, "groups": attributes[:, part.column], "seed": seed}
            with torch.enable_grad(), torch.inference_mode(False):
                result = fresh_decorrelation(
                    class_embeddings.clone(), attribute_embeddings.clone(), steps=self.measure_steps, **held_out
                )
                signed = fresh_decorrelation(
                    class_embeddings.clone(), attribute_embeddings.clone(), steps=self.measure_steps,
                    form="cosine", **held_out,
                )  # fmt: skip
            measured[part.name] = {
                "decorrelation": result["correlation"],
                "decorrelation_chance": result["chance"],
                "decorrelation_ceiling": result["ceiling"],
                "shared": result["shared"],
                "shared_cosine": signed["shared"],
                "linear_cka": attribute_cka(class_embeddings, attributes[:, part.column]),
                "strength": strength,
                "n": len(keep),
                "split": result["split"],
            }
        # JSON reports hold no NaN: a share is undefined (None) when e_a is constant (ceiling = chance)
        for values in measured.values():
            for name, value in values.items():
                if isinstance(value, float) and not math.isfinite(value):
                    values[name] = None
        pl_module.reports["test"]["parade"] = measured
        for name, values in measured.items():
            log.info(
                "parade: %s: fresh P's held-out corr %.4f (chance %.4f, ceiling %.4f); shared %s; linear CKA %s",
                name, values["decorrelation"], values["decorrelation_chance"],
                values["decorrelation_ceiling"], values["shared"], values["linear_cka"],
            )  # fmt: skip

    # -- embeddings for analysis -------------------------------------------------------------------
    @torch.no_grad()
    def attribute_embeddings(
        self, pl_module: L.LightningModule, images: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Each attribute head's (B, D′) embedding of `images`, or of their backbone `features` if already
        computed (for measuring the de-correlation achieved)."""
        if features is None:
            features = pl_module.model.features(images)
        return {part.name: pl_module.auxiliary[f"parade_{part.key}_head"](features) for part in self._parts}


def _gather(pl_module: L.LightningModule, values: torch.Tensor) -> torch.Tensor:
    """All processes' rows (evaluation shards are padded to equal length, so all_gather applies)."""
    gathered = pl_module.all_gather(values)
    return gathered.flatten(0, 1) if gathered.dim() > values.dim() else gathered


def fresh_decorrelation(
    class_embeddings: torch.Tensor,
    attribute_embeddings: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    hidden: int = 512,
    steps: int = 1000,
    lr: float = 1e-3,
    test_fraction: float = 0.5,
    seed: int = 0,
    form: str = "squared",
) -> dict[str, Any]:
    """The de-correlation achieved: how much of e_a a *fresh* P predicts from e_c on held-out samples.

    A fresh P, not the training adversary: adversarial removal can leave what a new predictor finds
    (Elazar & Goldberg 2018). Held out by class when class `labels` and attribute `groups` are given
    (`held_out_split`): an attribute that is constant within a class is otherwise predicted from the class
    alone, and every class-separating e_c would look fully correlated. Each P is trained full-batch with
    Adam on one part and scored (corr) on the rest. Three are trained, with the same recipe:
      `correlation` from e_c; `chance` from a constant (the best guess knowing nothing of the sample);
      `ceiling` from e_a itself (the most this form of corr can reach for these e_a).
    `shared` = (correlation − chance) / (ceiling − chance): 1 = e_c tells P all it could know of e_a,
    0 = nothing beyond chance. Comparable across runs, unlike raw corr, whose range depends on e_a.
    """
    class_embeddings, attribute_embeddings = class_embeddings.float(), attribute_embeddings.float()
    if groups is not None:
        classes = None if labels is None else labels.cpu().numpy()
        train, test, split = held_out_split(groups.cpu().numpy(), classes, test_fraction=test_fraction, seed=seed)
        train, test = torch.as_tensor(train), torch.as_tensor(test)
    else:
        order = torch.randperm(len(class_embeddings), generator=torch.Generator().manual_seed(seed))
        n_test = max(1, round(test_fraction * len(order)))
        test, train, split = order[:n_test], order[n_test:], "sample"
    inputs = {
        "correlation": class_embeddings,
        "chance": torch.ones(len(class_embeddings), 1),
        "ceiling": attribute_embeddings,
    }
    scores: dict[str, Any] = {
        name: _fresh_projection_score(
            values, attribute_embeddings, train, test, hidden, steps, lr, seed, form
        )
        for name, values in inputs.items()
    }
    spread = scores["ceiling"] - scores["chance"]
    scores["shared"] = (scores["correlation"] - scores["chance"]) / spread if spread > 1e-8 else float("nan")
    scores["split"] = split
    return scores


def _fresh_projection_score(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    train: torch.Tensor,
    test: torch.Tensor,
    hidden: int,
    steps: int,
    lr: float,
    seed: int,
    form: str,
) -> float:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        projection = projection_network(inputs.shape[1], hidden, targets.shape[1])
    optimizer = torch.optim.Adam(projection.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        (-correlation(targets[train], projection(inputs[train]), form)).backward()
        optimizer.step()
    with torch.no_grad():
        return float(correlation(targets[test], projection(inputs[test]), form))
