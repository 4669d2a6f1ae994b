"""Loss re-weighting by group, two ways, as mitigations: fixed inverse-frequency weights (`reweighted`) and
online up-weighting of the worst group (`worst_group`, GroupDRO-style; Sagawa et al., ICLR 2020).

Both hand a weighting to the module's `weight_loss_terms` (`DMLModule`'s, or a user module's with that method):
each sample, pair or triplet loss is multiplied by the weight of its anchor's group, then reduced as the loss
itself reduces (`fairdml.losses.GroupWeightedReducer`, built into DMLModule's loss). The groups are the data
module's `group_attribute` (crossed ones too), read from each batch's "attributes" by the module.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from fairdml.metrics.spec import group_key
from fairdml.mitigations.base import Mitigation


def inverse_frequency_weights(counts: np.ndarray) -> np.ndarray:
    """w_g = N / (G · N_g) over the G groups present: every group carries the same total weight, and the mean
    weight of a training sample is 1 (a group absent from training gets weight 0, since no sample has it).

    Example:
        >>> inverse_frequency_weights(np.array([90, 10])).tolist()
        [0.5555555555555556, 5.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


class GroupWeighting(Mitigation, abstract=True):
    """What both mitigations share: at fit's setup, the training split's group counts and the weighting handed to
    the module's `weight_loss_terms`; taken back at fit's teardown. Subclasses define `_group_weights`.

    Args:
        none here: a subclass's `__init__` arguments are its settings.
    """

    def __init__(self) -> None:
        super().__init__()
        self.group_names: list[str] = []
        self.train_counts = np.zeros(0)
        self._weighting_on = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        problems = _missing(trainer, pl_module, self.name)
        if problems:
            raise TypeError("; ".join(problems))
        datamodule = trainer.datamodule
        self.group_names = list(datamodule.group_names)
        codes = datamodule.views["train"].attribute_column(datamodule.group_attribute)
        self.train_counts = np.bincount(codes, minlength=len(self.group_names))
        self._start(trainer)
        try:
            pl_module.weight_loss_terms(self._group_weights)
        except ValueError as error:
            raise ValueError(f"{self.name}: {error}") from None
        self._weighting_on = True

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self._weighting_on:  # the module trains unweighted again after this fit
            pl_module.weight_loss_terms(None)
            self._weighting_on = False

    def _start(self, trainer: L.Trainer) -> None:
        """The subclass's state from the group counts, before the first step."""

    def _group_weights(self, losses: Tensor, groups: Tensor) -> Tensor:
        """(item losses (M,), their anchors' groups (M,)) -> one weight per group (G,), at every training step."""
        raise NotImplementedError


def _missing(trainer: L.Trainer, pl_module: L.LightningModule, owner: str) -> list[str]:
    """One line per piece the group weighting needs and lacks: the module's hook, fairdml's data module."""
    problems = []
    datamodule = trainer.datamodule
    if not isinstance(getattr(datamodule, "views", None), dict):
        problems.append(
            f"{owner} weights by the training split's group counts, which it reads from fairdml's "
            f"DMLDataModule; got {type(datamodule).__name__} (with other data, weight the loss yourself)"
        )
    if not callable(getattr(pl_module, "weight_loss_terms", None)):
        problems.append(
            f"{owner} weights the class loss by group through the module's weight_loss_terms(group_weights), which "
            f"{type(pl_module).__name__} lacks (DMLModule has it; for a module of yours, the recipe is in "
            f"fairdml.mitigations.base.MitigationHost)"
        )
    return problems


GROUP_LOSSES = ("train", "val")


class ReweightedLoss(GroupWeighting):
    """Each group's loss terms weighted by its inverse frequency in the training split, w_g = N / (G · N_g).

    The weights are fixed before training, from the training split as the protocol imbalanced it; a term's
    weight is its anchor's group's. Loss terms without an anchor (margin's learned-β penalty) stay unweighted.

    Raises:
        TypeError: in `setup`, when the module has no `weight_loss_terms` (fairdml's DMLModule has it).
        ValueError: in `setup`, for a loss whose terms are not per sample, pair or triplet (proxy_anchor).

    Args:
        none: the weights come from the training split's group counts.

    Example:
        >>> reweighted = ReweightedLoss()  # no settings: the weights come from the training split's counts
        >>> trainer = L.Trainer(max_epochs=1, callbacks=[reweighted], logger=False, enable_progress_bar=False)
        >>> inverse_frequency_weights(np.array([90, 10])).round(3).tolist()  # what a 90/10 split gets
        [0.556, 5.0]
    """

    name = "reweighted"
    title = "Loss re-weighting by inverse group frequency"
    summary = (
        "Every loss term (per sample, pair or triplet) is multiplied by the weight of its anchor's group, "
        "w_g = N / (G * N_g) from the training split's group counts, so each group carries the same total weight "
        "and the mean weight of a training sample is 1."
    )

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._weights: Tensor | None = None

    def _start(self, trainer: L.Trainer) -> None:
        self._weights = torch.as_tensor(inverse_frequency_weights(self.train_counts), dtype=torch.float32)

    def _group_weights(self, losses: Tensor, groups: Tensor) -> Tensor:
        assert self._weights is not None
        if self._weights.device != losses.device:
            self._weights = self._weights.to(losses.device)
        return self._weights

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        counts = self.train_counts
        if not len(counts):
            return None
        weights = inverse_frequency_weights(counts)
        names = self.group_names
        return {
            "group_weights": {name: float(w) for name, w in zip(names, weights)},
            "train_counts": {name: int(n) for name, n in zip(names, counts)},
        }


class WorstGroupLoss(GroupWeighting):
    """GroupDRO for DML losses: up-weight the groups whose loss is highest (Sagawa et al., ICLR 2020).

    q starts uniform and updates by exponentiated gradient, q_g ← q_g · exp(step_size · L_g), renormalised; the
    batch's terms are weighted q_g · M / M_g (M terms, M_g of them anchored in g), so that under a mean
    reduction the loss is Σ_g q_g L_g. What L_g is, `group_losses` says:

    - `train` (Sagawa et al.'s online algorithm): each step, the mean of the group's anchors' loss terms in the
      batch, plus their generalisation adjustment `adjustment / sqrt(n_g)` (n_g: the group's training samples),
      which raises small groups whose training loss understates their test loss. Across processes the group
      losses are summed before the update.
    - `val`: once per validation, the group's error on the held-out validation classes, 1 − Recall@1
      (`val_groups/recall_at_1/<group>`). In DML the test classes are unseen, and a group's training loss does
      not predict its test gap (the minority's few images are the easiest to fit): the validation classes do.

    Sagawa et al. also need strong regularisation (their ℓ2 penalty, or early stopping) for GroupDRO to help
    beyond the training set: set `optim.weight_decay` (`experiment=worst_group_heldout` does both).
    q is kept in checkpoints (a resume continues it) and logged as `worst_group/q/<group>` each epoch.

    Args:
        step_size: η, the exponentiated-gradient step of q (Sagawa et al. use 0.01 per step); 0 keeps q uniform.
        group_losses: `train` or `val` (above).
        adjustment: C of the `train` losses' adjustment C / sqrt(n_g) (Sagawa et al. tune C in 0..5); 0: none.

    Example:
        >>> worst_group = WorstGroupLoss(step_size=0.05)
        >>> trainer = L.Trainer(max_epochs=1, callbacks=[worst_group], logger=False, enable_progress_bar=False)
        >>> worst_group.describe()["settings"]
        {'step_size': 0.05, 'group_losses': 'train', 'adjustment': 0.0}
        >>> WorstGroupLoss(step_size=-1)
        Traceback (most recent call last):
        ...
        ValueError: worst_group step_size must be a number >= 0, got -1
    """

    name = "worst_group"
    title = "Worst-group loss (GroupDRO-style)"
    summary = (
        "Group weights q follow the groups' losses (q_g grows as exp(step_size * L_g), then renormalised), and "
        "each group's loss terms are weighted by q_g, so the group the model serves worst gets the most weight "
        "(Sagawa et al., 2020, adapted to DML losses by weighting each term by its anchor's group). L_g is the "
        "training loss (plus adjustment / sqrt(n_g)) or, with group_losses=val, 1 - Recall@1 on the validation "
        "classes."
    )

    def __init__(self, step_size: float = 0.01, group_losses: str = "train", adjustment: float = 0.0) -> None:
        super().__init__()
        for key, value in (("step_size", step_size), ("adjustment", adjustment)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"worst_group {key} must be a number >= 0, got {value!r}")
        if group_losses not in GROUP_LOSSES:
            raise ValueError(f"worst_group group_losses must be one of {list(GROUP_LOSSES)}, got {group_losses!r}")
        adjustment = float(adjustment)
        self.save_hyperparameters()
        self.q: Tensor | None = None
        self._q_to_load: list[float] | None = None
        self._reduce = None
        self._adjust: Tensor | None = None
        self.val_losses: dict[str, float] = {}

    def _start(self, trainer: L.Trainer) -> None:
        n_groups = len(self.group_names)
        self.q = torch.full((n_groups,), 1.0 / n_groups)
        if self._q_to_load is not None:
            self._load_q(self._q_to_load)
        if trainer.world_size > 1:
            self._reduce = lambda t: trainer.strategy.reduce(t, reduce_op="sum")
        counts = torch.as_tensor(self.train_counts, dtype=torch.float32).clamp_min(1)
        self._adjust = self.hparams.adjustment / counts.sqrt()

    def _group_weights(self, losses: Tensor, groups: Tensor) -> Tensor:
        """Update q from this batch's group losses (`train`; on the device, no host sync) and return the terms'
        weights."""
        assert self.q is not None
        n_groups = len(self.q)
        if self.hparams.group_losses == "val":  # q moves at validation; here only the weights
            counts = torch.zeros(n_groups, device=losses.device).index_add_(0, groups, torch.ones_like(losses.float()))
            if self._reduce is not None:
                counts = self._reduce(counts)
            return self._weights_for(counts)
        losses = torch.nan_to_num(losses.float(), nan=0.0, posinf=0.0, neginf=0.0)  # a bad batch cannot poison q
        sums = torch.zeros(n_groups, device=losses.device).index_add_(0, groups, losses)
        counts = torch.zeros(n_groups, device=losses.device).index_add_(0, groups, torch.ones_like(losses))
        if self._reduce is not None:
            sums, counts = self._reduce(sums), self._reduce(counts)
        means = sums / counts.clamp_min(1)
        if self._adjust is not None:
            means = means + self._adjust.to(losses.device)
        q = self.q.to(losses.device) * torch.exp(self.hparams.step_size * means * (counts > 0))
        self.q = q / q.sum()
        return self._weights_for(counts)

    def _weights_for(self, counts: Tensor) -> Tensor:
        """q_g · M / M_g for the groups in the batch (M_g terms of M), 0 for the absent ones."""
        q = self.q.to(counts.device)
        return torch.where(counts > 0, q * counts.sum() / counts.clamp_min(1), torch.zeros_like(q))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """`val` mode: q_g ← q_g · exp(step_size · (1 − Recall@1_g)) from this validation's held-out classes."""
        if self.hparams.group_losses != "val" or self.q is None or trainer.sanity_checking:
            return
        keys = {name: group_key("val", "recall@1", name) for name in self.group_names}
        missing = [key for key in keys.values() if key not in trainer.callback_metrics]
        if missing:
            raise RuntimeError(
                f"worst_group group_losses=val needs the validation's per-group Recall@1 ({missing[0]} is not "
                f"logged): validate every epoch with fairdml's DMLModule, or use group_losses=train"
            )
        errors = torch.tensor([1.0 - float(trainer.callback_metrics[keys[name]]) for name in self.group_names])
        self.val_losses = dict(zip(self.group_names, errors.tolist()))
        q = self.q.cpu() * torch.exp(self.hparams.step_size * errors)
        self.q = (q / q.sum()).to(self.q.device)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.q is not None:  # q as the epoch leaves it, one point per epoch
            for code, name in enumerate(self.group_names):
                pl_module.log(f"worst_group/q/{name}", self.q[code], on_step=False, on_epoch=True)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.q is None else {"q": self.q.detach().cpu().tolist()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "q" in state_dict:
            if self.q is None:
                self._q_to_load = list(state_dict["q"])  # setup has not run yet: apply it there
            else:
                self._load_q(state_dict["q"])

    def _load_q(self, values: list[float]) -> None:
        assert self.q is not None
        if len(values) != len(self.q):
            raise ValueError(
                f"worst_group: the checkpoint has {len(values)} group weights, the data {len(self.q)} groups"
            )
        self.q = torch.tensor(values, dtype=torch.float32, device=self.q.device)

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        if self.q is None:
            return None
        measured: dict[str, Any] = {
            "final_q": {name: float(v) for name, v in zip(self.group_names, self.q.cpu().tolist())}
        }
        if self.val_losses:
            measured["last_val_losses"] = self.val_losses
        return measured
