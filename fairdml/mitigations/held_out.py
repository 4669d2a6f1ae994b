"""What the loss-term mitigations (`fpr_penalty`, `fair_contrastive`) share: which attribute column a batch's
groups are in and what the groups are called, the test split's embeddings collected for `measure`, and their
Lightning hooks (`LossTermMitigation`).

Groups come from fairdml's `DMLDataModule` when the run has one (an attribute by name, or the data module's
`group_attribute` and `group_names`); with other data, from a column of the batches' `attributes` (B, A), its
codes named by their numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch

from fairdml.metrics.fairness import drop_duplicate_indices
from fairdml.mitigations.base import Mitigation, check_wired, require_host
from fairdml.models.precision import full_precision


@dataclass(frozen=True)
class AttributeGroups:
    """Where a sensitive attribute is in the batches and what its codes are called.

    Args:
        attribute: its name (the data's, or the one the mitigation was given).
        column: its index in `batch["attributes"]`.
        names: the name of each code, or None when the data does not say (codes are then named by number).

    Example:
        >>> AttributeGroups("style", 0, ("majority", "minority")).name_of(1)
        'minority'
        >>> AttributeGroups("skin", 2, None).name_of(1)
        '1'
    """

    attribute: str
    column: int
    names: tuple[str, ...] | None

    def name_of(self, code: int) -> str:
        if self.names is not None and 0 <= code < len(self.names):
            return str(self.names[code])
        return str(code)


def attribute_groups(
    trainer: L.Trainer, attribute: str | None, attribute_column: int | None, owner: str
) -> AttributeGroups:
    """The groups of `attribute` (None: the data module's `group_attribute`) in fairdml's data, or else the
    batches' column `attribute_column` (None: the first).

    Raises:
        ValueError: for an attribute that fairdml's data does not have, naming the ones it has.
    """
    datamodule = getattr(trainer, "datamodule", None)
    views = getattr(datamodule, "views", None)
    if isinstance(views, dict) and views:
        view = views.get("train") or next(iter(views.values()))
        names = list(view.attribute_names)
        name = attribute if attribute is not None else getattr(datamodule, "group_attribute", None)
        if name is None:
            name = names[0]
        if name not in names:
            raise ValueError(f"{owner}: attribute {name!r} is not in the data's attributes {names}")
        column = names.index(name)
        if name == getattr(datamodule, "group_attribute", None) and getattr(datamodule, "group_names", None):
            values = tuple(str(v) for v in datamodule.group_names)
        else:
            values = tuple(str(v) for v in view.attribute_values[column])
        return AttributeGroups(name, column, values)
    column = 0 if attribute_column is None else int(attribute_column)
    return AttributeGroups(attribute or f"attribute_{column}", column, None)


class HeldOutEmbeddings:
    """The test split's class embeddings, labels and attributes, batch by batch (from what `test_step` returns),
    then gathered across processes with each sample once (DDP pads the last shard with repeats).

    Args:
        owner: the mitigation's class name, for the error when `test_step` returns no embeddings.

    Example:
        >>> held_out = HeldOutEmbeddings("Mine")
        >>> batch = {"index": torch.arange(3), "label": torch.tensor([0, 0, 1]), "attributes": torch.zeros(3, 1)}
        >>> held_out.add(L.LightningModule(), {"features": torch.ones(3, 4), "embeddings": torch.ones(3, 2)}, batch)
        >>> len(held_out.batches)
        1
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.batches: list[dict[str, torch.Tensor]] = []

    def reset(self) -> None:
        self.batches = []

    @torch.no_grad()
    def add(self, pl_module: L.LightningModule, outputs: Any, batch: dict) -> None:
        if not isinstance(outputs, dict) or "embeddings" not in outputs:
            raise TypeError(
                f"{self.owner} measures at the test from what test_step returns: {type(pl_module).__name__}"
                f".test_step must return a dict with 'features' and 'embeddings' (MitigationHost), got "
                f"{type(outputs).__name__}" + (f" with keys {sorted(outputs)}" if isinstance(outputs, dict) else "")
            )
        self.batches.append({
            "index": batch["index"], "label": batch["label"], "attributes": batch["attributes"],
            "embeddings": full_precision(outputs["embeddings"].detach()),
        })  # fmt: skip

    def gathered(self, pl_module: L.LightningModule) -> dict[str, torch.Tensor] | None:
        """Every process's rows on the CPU, each sample once, ordered by index; None when nothing was collected
        (and the collection is emptied)."""
        batches, self.batches = self.batches, []
        if not batches:
            return None
        keep = drop_duplicate_indices(_gather(pl_module, torch.cat([b["index"] for b in batches])).cpu())
        return {
            key: _gather(pl_module, torch.cat([b[key] for b in batches])).cpu()[keep]
            for key in ("embeddings", "label", "attributes")
        }


def _gather(pl_module: L.LightningModule, values: torch.Tensor) -> torch.Tensor:
    """All processes' rows (evaluation shards are padded to equal length, so all_gather applies)."""
    if getattr(pl_module, "_trainer", None) is None:  # outside a Trainer: this process's rows
        return values
    gathered = pl_module.all_gather(values)
    return gathered.flatten(0, 1) if gathered.dim() > values.dim() else gathered


class LossTermMitigation(Mitigation, abstract=True):
    """The hooks of a mitigation that adds one loss term and measures on the test split's embeddings: at `setup`,
    the host is checked, the groups are found (settings `attribute`, `attribute_column`) and `loss_terms` is
    registered once per host; at the first optimiser step, `check_wired`; during the test, the embeddings are
    collected into `self._held_out` for `measure`. A subclass defines `loss_terms` and `measure` and counts its
    calls in `self._term_calls`.

    Args:
        none here: a subclass's `__init__` arguments are its settings.
    """

    def __init__(self) -> None:
        super().__init__()
        self._held_out = HeldOutEmbeddings(type(self).__name__)
        self._groups: AttributeGroups | None = None
        self._attached_to: int | None = None
        self._term_calls = 0
        self._wiring_checked = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        owner = type(self).__name__
        host = require_host(pl_module, owner)
        self._groups = attribute_groups(trainer, self.hparams.attribute, self.hparams.attribute_column, owner)
        if self._attached_to != id(host):
            host.add_loss_term(self.loss_terms)
            self._attached_to = id(host)

    def loss_terms(self, pl_module: L.LightningModule, step: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:  # noqa: ANN001
        if not self._wiring_checked:
            self._wiring_checked = True  # once: the first step shows whether the host adds the term
            check_wired(type(self).__name__, pl_module, trainer.optimizers, {}, self._term_calls)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._held_out.reset()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._held_out.add(pl_module, outputs, batch)
