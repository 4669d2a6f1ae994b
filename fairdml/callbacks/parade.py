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
from fairdml.models.backbones import feature_dim
from fairdml.models.heads import EmbeddingHead

log = logging.getLogger("fairdml")

SCHEDULES = ("constant", "linear", "cosine")


def projection_network(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """P: linear D→h, ReLU, linear h→D′ (MIC's adversarial projection; h = 512 there)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def correlation(attribute_embeddings: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """corr = mean_batch Σ_d (e_a ⊙ normalize(P(e_c)))_d²; both sides L2-normalised. (B, D′), (B, D′) → ()."""
    target = F.normalize(attribute_embeddings, dim=-1)
    return (target * F.normalize(predicted, dim=-1)).pow(2).sum(dim=-1).mean()


def decorrelation_terms(
    class_embeddings: torch.Tensor,
    attribute_embeddings: torch.Tensor,
    projection: nn.Module,
    strength: float,
    reverse_attribute_branch: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(P's loss −corr, raw corr). Gradients: P descends −corr; the encoder(s) get ρ′ × the reversed one.

    `reverse_attribute_branch`: MIC reverses both branches (the attribute head is also pushed away from
    what P predicts); False detaches e_a here, so only e_c is de-correlated.
    """
    class_in = reverse_gradient(F.normalize(class_embeddings, dim=-1), strength)
    target = F.normalize(attribute_embeddings, dim=-1)
    target = reverse_gradient(target, strength) if reverse_attribute_branch else target.detach()
    corr = correlation(target, projection(class_in))
    return -corr, corr.detach()


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
    ):
        super().__init__()
        self.attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        if not self.attributes:
            raise ValueError("parade.attributes is empty; name at least one sensitive attribute")
        strengths = list(strength) if isinstance(strength, list | tuple) else [strength] * len(self.attributes)
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
        self.attribute_miner, self.attribute_miner_kwargs = attribute_miner, dict(attribute_miner_kwargs or {})
        self.attribute_loss_weight = attribute_loss_weight
        self.attribute_through_backbone = attribute_through_backbone
        self.reverse_attribute_branch = reverse_attribute_branch
        self.attribute_lr = attribute_lr
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

    def attach(self, pl_module: L.LightningModule, attribute_names: list[str], value_counts: list[int]) -> None:
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
            attribute_loss = pl_module.auxiliary[f"parade_{part.key}_loss"](attribute_embeddings, codes, pairs)
            projection_loss, corr = decorrelation_terms(
                step["embeddings"], attribute_embeddings, pl_module.auxiliary[f"parade_{part.key}_projection"],
                strength, self.reverse_attribute_branch,
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
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "attributes": list(self.attributes), "strengths": list(self.strengths)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("attributes") != self.attributes:
            raise ValueError(
                f"checkpoint's PARADE attributes {state_dict.get('attributes')} differ from the config's "
                f"{self.attributes}; resume with the same parade.attributes"
            )
        if state_dict.get("strengths") != self.strengths:
            log.warning("parade: strengths changed on resume: %s -> %s", state_dict.get("strengths"), self.strengths)
        self.step = int(state_dict["step"])

    # -- embeddings for analysis -------------------------------------------------------------------
    @torch.no_grad()
    def attribute_embeddings(self, pl_module: L.LightningModule, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each attribute head's (B, D′) embedding of `images` (for measuring the de-correlation achieved)."""
        features = pl_module.model.features(images)
        return {part.name: pl_module.auxiliary[f"parade_{part.key}_head"](features) for part in self._parts}


def fresh_decorrelation(
    class_embeddings: torch.Tensor,
    attribute_embeddings: torch.Tensor,
    *,
    hidden: int = 512,
    steps: int = 1000,
    lr: float = 1e-3,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> dict[str, float]:
    """The de-correlation achieved: corr of a *fresh* P trained on held-out embeddings (lower = less shared).

    A fresh P, not the training adversary: adversarial removal can leave what a new predictor finds
    (Elazar & Goldberg 2018). P is trained full-batch with Adam on one part and scored on the rest;
    `chance` is the same score with e_c shuffled across samples (nothing predictable).
    """
    generator = torch.Generator().manual_seed(seed)
    class_embeddings, attribute_embeddings = class_embeddings.float(), attribute_embeddings.float()
    order = torch.randperm(len(class_embeddings), generator=generator)
    n_test = max(1, round(test_fraction * len(order)))
    test, train = order[:n_test], order[n_test:]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        projection = projection_network(class_embeddings.shape[1], hidden, attribute_embeddings.shape[1])
    optimizer = torch.optim.Adam(projection.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        (-correlation(attribute_embeddings[train], projection(class_embeddings[train]))).backward()
        optimizer.step()
    with torch.no_grad():
        held_out = correlation(attribute_embeddings[test], projection(class_embeddings[test]))
        shuffled = class_embeddings[test][torch.randperm(n_test, generator=generator)]
        chance = correlation(attribute_embeddings[test], projection(shuffled))
    return {"correlation": float(held_out), "chance": float(chance)}
