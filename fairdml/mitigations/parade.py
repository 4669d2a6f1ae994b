"""PARADE (Dullerud et al., ICLR 2022) as a Lightning callback: partial attribute de-correlation.

Per sensitive attribute, a second embedding head e_a on the backbone features (trained with a DML loss on
the attribute's labels), and a projection network P that learns to predict e_a from the class embedding
e_c, against which the encoder is trained (as in MIC/DiVA). The maths is in plain functions, testable
without a Trainer: `fairdml.mitigations.parade_objectives` (what P and the encoder descend, the schedule) and
`fairdml.metrics.functional.decorrelation` (corr, CKA, the fresh-P measurement of the test report). This
module only wires them in, through the `MitigationHost` protocol (`add_auxiliary` / `add_loss_term`), which
`DMLModule` and any LightningModule that meets it implement.

Nothing of this reaches DMLModule's exported model: the heads live in its `auxiliary`, which export drops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import nn

from fairdml.losses import create_loss, create_miner
from fairdml.metrics.fairness import drop_duplicate_indices
from fairdml.metrics.functional.decorrelation import (
    CorrelationForm,
    measure_decorrelation,
    projection_network,
)
from fairdml.mitigations.base import Mitigation, MitigationHost, check_wired, require_host
from fairdml.mitigations.parade_objectives import (
    EncoderObjective,
    Schedule,
    check_options,
    decorrelation_terms,
    fit_projection,
    scheduled_strength,
)
from fairdml.models.heads import EmbeddingHead
from fairdml.models.lightning_probe import is_logging_step
from fairdml.models.precision import call_in_own_precision, full_precision, without_autocast
from fairdml.utils.numbers import strict_json

log = logging.getLogger("fairdml")


@dataclass
class _AttributeParts:
    name: str  # attribute name in the data
    key: str  # ModuleDict-safe name
    column: int  # index in batch["attributes"]
    strength: float
    num_values: int  # values the attribute takes in the data (the one-hot width of its codes)


class Parade(Mitigation):
    """Attribute heads + de-correlation of the class embedding from each, one set per attribute.

    For attribute `a` it adds `parade_a_head` (e_a), `parade_a_projection` (P) and `parade_a_loss` to the
    module's auxiliary parts, the loss terms `parade_attr_a` and `parade_dec_a`, and logs
    `parade/a/{correlation,strength,attribute_loss}`. Its arguments are the keys of the `callbacks.parade`
    config block (configs/callbacks/parade.yaml); after the test, `report["mitigations"]["parade"]` holds
    them and, under "measured", the de-correlation a fresh P finds on the test split.

    Args:
        attributes: sensitive attributes (names in the data's `attributes`), one string or a list.
        strength: ρ′, the de-correlation weight on a sum over e_a's dimensions (ρ′ = ρ / D′ for MIC's mean
            form: ρ = 2048 at D′ = 128 is 16); one value for all attributes or one per attribute.
        schedule: ρ′ at once (`constant`) or ramped from 0 over `warmup_steps` (`linear`, `cosine`); P trains
            from step 0 either way.
        warmup_steps: training batches the ramp lasts.
        projection_hidden: P's hidden width (MIC: 512).
        projection_lr: P's own learning rate, independent of ρ′.
        attribute_embedding_dim: D′, the size of e_a.
        attribute_loss: `fairdml.losses` name of the attribute head's DML loss, `attribute_loss_kwargs` its
            keyword arguments.
        attribute_miner: `fairdml.losses` miner for that loss, or None; `attribute_miner_kwargs` its arguments.
        attribute_loss_weight: weight of the attribute loss in the total.
        attribute_through_backbone: False detaches the features, so the attribute loss trains its head only.
        reverse_attribute_branch: `reversal` only. True (MIC) pushes e_a away from P's prediction as well;
            False de-correlates e_c alone.
        attribute_lr: the attribute heads' learning rate; None: `optim.lr`.
        projection_steps: updates of P per batch; the extra ones run on detached embeddings so that P keeps
            up with the encoder (`fit_projection`).
        correlation: corr's form: `squared` (MIC, sign-blind) or `cosine` (sign-aware).
        encoder_objective: what the encoder descends: `reversal` (MIC, the paper), `confusion`, `covariance`
            or `kernel_covariance` (`fairdml.mitigations.parade_objectives` explains each).
        measure_steps: Adam steps of each fresh P that measures the de-correlation at test end.
        attribute_value_counts: for data that is not fairdml's `DMLDataModule`: how many values each attribute
            takes (codes 0..n-1); the batches then hold `attributes` (B, A) with one column per name in
            `attributes`, in that order, beside `label` (B,) and `index` (B,). None: read from fairdml's data.

    Raises:
        ValueError: at construction, listing every invalid argument (no attribute, a number of strengths that
            is neither one nor one per attribute, a value out of range, an unknown choice, a loss or miner
            that cannot be built with its kwargs); in `setup`, for an attribute the training data lacks.

    Example:
        A callback of any Trainer, for any `MitigationHost` module and data with a `style` attribute (README,
        "Python API", trains one); after `trainer.test`,
        `module.reports["test"]["mitigations"]["parade"]["measured"]["style"]` holds the de-correlation a fresh
        P finds:

        >>> parade = Parade(attributes=["style"], strength=0.1, encoder_objective="covariance")
        >>> trainer = L.Trainer(max_epochs=2, callbacks=[parade], logger=False, enable_progress_bar=False)
        >>> parade.describe()["settings"]["strength"], parade.current_strengths()
        (0.1, [0.1])
        >>> Parade(strength=-1, schedule="exponential")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Parade: schedule='exponential' must be one of (...); strength=-1 must be >= 0
    """

    name = "parade"
    title = "PARADE (partial attribute de-correlation)"
    summary = (
        "PARADE trains an attribute embedding beside the class embedding and removes their correlation "
        "adversarially; strength is ρ′ (sum over dimensions, ρ′ = ρ/D in the mean-over-dims form)."
    )

    def __init__(
        self,
        attributes: Sequence[str] | str = ("style",),
        strength: float | Sequence[float] = 4.0,
        schedule: Schedule = "constant",
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
        correlation: CorrelationForm = "squared",
        encoder_objective: EncoderObjective = "reversal",
        measure_steps: int = 500,
        attribute_value_counts: Sequence[int] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        strengths = list(strength) if isinstance(strength, list | tuple) else [strength] * len(self.attributes)
        check_options(self.hparams, self.attributes, strengths)
        self.strengths = [float(s) for s in strengths]
        # Every other argument is read from self.hparams (save_hyperparameters), the one copy of the settings.
        self._projection_optimizers: dict[str, torch.optim.Optimizer] = {}
        self._pending_optimizer_states: dict[str, dict] = {}
        self.step = 0  # training batches seen: drives the schedule, saved in checkpoints
        self._parts: list[_AttributeParts] = []
        self._miners: dict[str, nn.Module | None] = {}
        self._attached_to: int | None = None
        self._test_batches: list[dict[str, Any]] = []
        self._term_calls = 0  # loss_terms calls: check_wired's proof that the host adds the terms
        self._wiring_checked = False

    # -- wiring ------------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        host = require_host(pl_module, "Parade")
        self.attach(host, *self._attribute_layout(trainer))

    def _attribute_layout(self, trainer: L.Trainer) -> tuple[list[str], list[int]]:
        """The attributes' names in the order of the batches' columns, and how many values each takes: from
        fairdml's data module, or from this callback's own arguments for any other data (the batch contract)."""
        views = getattr(getattr(trainer, "datamodule", None), "views", None)
        if isinstance(views, dict) and "train" in views:
            view = views["train"]
            return list(view.attribute_names), [len(values) for values in view.attribute_values]
        counts = self.hparams.attribute_value_counts
        if counts is None:
            raise TypeError(
                "Parade: the data is not fairdml's DMLDataModule, so give attribute_value_counts=[...] (how many "
                "values each of `attributes` takes); its batches must hold 'attributes' (B, A), one column per "
                "attribute in that order, with 'label' (B,) and 'index' (B,)"
            )
        return list(self.attributes), [int(count) for count in counts]

    def attach(self, pl_module: MitigationHost, attribute_names: list[str], value_counts: list[int]) -> None:
        """Add heads, projections and losses to `pl_module` (before optimisers and DDP exist); idempotent."""
        if self._attached_to == id(pl_module):
            return
        unknown = [a for a in self.attributes if a not in attribute_names]
        if unknown:
            raise ValueError(f"Parade: attributes {unknown} not in the data's attributes {attribute_names}")
        hp = self.hparams
        self._parts = []
        for name, strength in zip(self.attributes, self.strengths, strict=True):
            key = "".join(c if c.isalnum() else "_" for c in name)
            column = attribute_names.index(name)
            if f"parade_{key}_head" not in pl_module.auxiliary:  # e.g. a second `setup` for testing
                dim = hp.attribute_embedding_dim
                head = EmbeddingHead(pl_module.feature_dim, dim)
                pl_module.add_auxiliary(f"parade_{key}_head", head, hp.attribute_lr)  # None: the module's head lr
                projection = projection_network(pl_module.embedding_dim, hp.projection_hidden, dim)
                pl_module.add_auxiliary(f"parade_{key}_projection", projection, hp.projection_lr)
                loss = create_loss(hp.attribute_loss, value_counts[column], dim, **(hp.attribute_loss_kwargs or {}))
                # A loss with parameters (learnable margin beta, proxies) is trained like the main loss's.
                pl_module.add_auxiliary(f"parade_{key}_loss", loss, loss=True)
            self._miners[key] = create_miner(hp.attribute_miner, **(hp.attribute_miner_kwargs or {}))
            self._parts.append(_AttributeParts(name, key, column, strength, value_counts[column]))
        pl_module.add_loss_term(self.loss_terms)
        self._attached_to = id(pl_module)

    # -- the loss ----------------------------------------------------------------------------------
    def current_strengths(self) -> list[float]:
        """ρ′ of each attribute at the current step (the schedule's value)."""
        hp = self.hparams
        return [scheduled_strength(s, hp.schedule, hp.warmup_steps, self.step) for s in self.strengths]

    def loss_terms(self, pl_module: MitigationHost, step: dict) -> dict[str, torch.Tensor]:
        """L_attr(e_a) (weighted) and the de-correlation term per attribute (`decorrelation_terms`)."""
        hp = self.hparams
        self._term_calls += 1
        features = step["features"] if hp.attribute_through_backbone else step["features"].detach()
        attributes = step["batch"]["attributes"]
        batch_size = len(attributes)
        logging = is_logging_step(pl_module)
        terms: dict[str, torch.Tensor] = {}
        class_embeddings = full_precision(step["embeddings"])
        for part, strength in zip(self._parts, self.current_strengths(), strict=True):
            codes = attributes[:, part.column]
            # the head under the step's autocast (if any); its loss, P and the statistics in float32
            attribute_embeddings = full_precision(pl_module.auxiliary[f"parade_{part.key}_head"](features))
            miner = self._miners[part.key]
            projection = pl_module.auxiliary[f"parade_{part.key}_projection"]
            with without_autocast(features.device):
                pairs = miner(attribute_embeddings, codes) if miner is not None else None
                attribute_loss = pl_module.auxiliary[f"parade_{part.key}_loss"](attribute_embeddings, codes, pairs)
                if hp.projection_steps > 1:
                    self._train_projection(part.key, projection, class_embeddings, attribute_embeddings)
                projection_loss, corr = decorrelation_terms(
                    class_embeddings, attribute_embeddings, projection, strength, hp.reverse_attribute_branch,
                    hp.correlation, hp.encoder_objective, codes, part.num_values,
                )  # fmt: skip
            terms[f"parade_attr_{part.key}"] = hp.attribute_loss_weight * attribute_loss
            terms[f"parade_dec_{part.key}"] = projection_loss
            if logging:  # only the steps whose values reach the loggers (`is_logging_step`)
                pl_module.log(f"parade/{part.key}/correlation", corr, batch_size=batch_size)
                # a Python number would be copied to the device by `log` (a sync); `new_full` only fills
                pl_module.log(f"parade/{part.key}/strength", corr.new_full((), strength), batch_size=batch_size)
                pl_module.log(f"parade/{part.key}/attribute_loss", attribute_loss.detach(), batch_size=batch_size)
        return terms

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.step += 1

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: MitigationHost, optimizer) -> None:  # noqa: ANN001
        if self._wiring_checked:
            return
        self._wiring_checked = True  # once: the first step shows whether the heads, P and the terms take part
        modules = {f"auxiliary['{name}']": m for name, m in pl_module.auxiliary.items() if name.startswith("parade_")}
        check_wired("Parade", pl_module, trainer.optimizers, modules, self._term_calls)

    def _train_projection(
        self, key: str, projection: nn.Module, class_embeddings: torch.Tensor, attribute_embeddings: torch.Tensor
    ) -> None:
        """`projection_steps − 1` extra updates of P with its own Adam, whose state is saved with the callback's
        (restored lazily: the optimiser needs P's parameters, which exist only after `attach`)."""
        if key not in self._projection_optimizers:
            optimizer = torch.optim.Adam(list(projection.parameters()), lr=self.hparams.projection_lr)
            if key in self._pending_optimizer_states:
                optimizer.load_state_dict(self._pending_optimizer_states.pop(key))
            self._projection_optimizers[key] = optimizer
        fit_projection(
            projection, self._projection_optimizers[key], class_embeddings, attribute_embeddings,
            self.hparams.projection_steps - 1, self.hparams.correlation,
        )  # fmt: skip

    # -- state in checkpoints ----------------------------------------------------------------------
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
                f"{self.attributes}; resume with the same attributes"
            )
        if state_dict.get("strengths") != self.strengths:
            log.warning("parade: strengths changed on resume: %s -> %s", state_dict.get("strengths"), self.strengths)
        self.step = int(state_dict["step"])
        self._projection_optimizers = {}
        self._pending_optimizer_states = dict(state_dict.get("projection_optimizers", {}))

    # -- the de-correlation achieved, measured on the test split -------------------------------------
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: MitigationHost) -> None:
        self._test_batches = []

    @torch.no_grad()
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        # `outputs` is DMLModule.test_step's: the backbone ran once for the metric and for the heads here
        if not isinstance(outputs, dict) or not {"features", "embeddings"} <= outputs.keys():
            raise TypeError(
                f"Parade measures at the test from what test_step returns: {type(pl_module).__name__}.test_step "
                f"must return a dict with 'features' and 'embeddings' (MitigationHost), got {type(outputs).__name__}"
                + (f" with keys {sorted(outputs)}" if isinstance(outputs, dict) else "")
            )
        self._test_batches.append({
            "index": batch["index"], "label": batch["label"], "attributes": batch["attributes"],
            "class": full_precision(outputs["embeddings"]),
            "attribute": list(self.attribute_embeddings(pl_module, features=outputs["features"]).values()),
        })  # fmt: skip

    def measure(self, trainer: L.Trainer, pl_module: MitigationHost) -> dict[str, Any] | None:
        """Per attribute, fresh P's held-out figures on the test split (`measure_decorrelation`)."""
        batches, self._test_batches = self._test_batches, []
        if not batches:
            return None

        # DDP pads the last shard with repeated samples: keep each index once
        keep = drop_duplicate_indices(_gather(pl_module, torch.cat([b["index"] for b in batches])).cpu())

        def gathered(key: str, i: int | None = None) -> torch.Tensor:
            values = torch.cat([b[key] if i is None else b[key][i] for b in batches])
            return _gather(pl_module, values).cpu()[keep]

        class_embeddings, labels, attributes = gathered("class"), gathered("label"), gathered("attributes")
        seed = int(getattr(pl_module, "seed", os.environ.get("PL_GLOBAL_SEED", 0)))
        measured = {}
        for i, (part, strength) in enumerate(zip(self._parts, self.current_strengths(), strict=True)):
            figures = measure_decorrelation(
                class_embeddings, gathered("attribute", i), labels, attributes[:, part.column],
                steps=self.hparams.measure_steps, seed=seed,
            )  # fmt: skip
            split = figures.pop("split")  # last in the report, after the run's own figures
            measured[part.name] = {**figures, "strength": strength, "n": len(keep), "split": split}
        # JSON reports hold no NaN: a share is undefined (None) when e_a is constant (ceiling = chance)
        measured = strict_json(measured)
        for name, values in measured.items():
            log.info(
                "parade: %s: fresh P's held-out corr %.4f (chance %.4f, ceiling %.4f); shared %s; linear CKA %s",
                name, values["decorrelation"], values["decorrelation_chance"],
                values["decorrelation_ceiling"], values["shared"], values["linear_cka"],
            )  # fmt: skip
        return measured

    # -- embeddings for analysis -------------------------------------------------------------------
    @torch.no_grad()
    def attribute_embeddings(
        self, pl_module: MitigationHost, images: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Each attribute head's (B, D′) float32 embedding of `images`, or of their backbone `features` if
        already computed (for measuring the de-correlation achieved)."""
        if features is None:
            features = pl_module.features(images)
        # Outside the step's autocast (a hook) the features may be bf16 while the heads are float32
        heads = {part.name: pl_module.auxiliary[f"parade_{part.key}_head"] for part in self._parts}
        return {name: call_in_own_precision(head, features) for name, head in heads.items()}


def _gather(pl_module: MitigationHost, values: torch.Tensor) -> torch.Tensor:
    """All processes' rows (evaluation shards are padded to equal length, so all_gather applies)."""
    gathered = pl_module.all_gather(values)
    return gathered.flatten(0, 1) if gathered.dim() > values.dim() else gathered
