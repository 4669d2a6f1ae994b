"""CIFP, the instance false-positive-rate penalty, as a mitigation for pair-based DML (`fpr_penalty`).

Xu, Huang, Shen, Li, Li, Huang, Li and Ji, "Consistent Instance False Positive Improves Fairness in Face
Recognition", CVPR 2021 (arXiv:2106.05519).

What is CIFP's: an instance's false-positive rate FPR_i is the share of its non-target similarities above one
unified threshold T_u, and T_u is set so that the total FPR over all non-target similarities equals a preset u.
The loss penalises each instance in proportion to FPR_i / FPR_total, so instances (and so, without any group
labels, demographic groups) with more false positives are pushed harder, and the instance FPRs become alike.

What is adapted: CIFP's similarities are those of a sample to the identity weights of a softmax classifier, and
the penalty is a term in the softmax's denominator. A pair-based DML loss has no identity weights, so here the
non-target similarities are the batch's negative pairs (different classes), with s_ij the cosine similarity:

    T_u    = the (1 − u) quantile of {s_ij : y_i ≠ y_j}, detached   (the total FPR of the batch is u)
    FPR_i  = mean over j with y_j ≠ y_i of sigmoid((s_ij − T_u) / t)  (a soft count of i's false positives)
    w_i    = FPR_i / mean_k FPR_k, detached                        (CIFP's instance FPR over total FPR)
    L_fpr  = strength · mean_i w_i · FPR_i

A negative pair's similarity above T_u is pushed down with a weight w_i that grows with its instance's FPR, as
CIFP's denominator penalty does. At fixed weights the gradient is that of mean_i FPR_i² / (2 mean_k FPR_k), a
second moment: lowering it lowers the instance FPRs' spread as well as their level. The temperature t turns the
count into a differentiable one (t → 0 gives CIFP's indicator); `measure` uses the hard indicator.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from fairdml.mitigations.base import MitigationHost
from fairdml.mitigations.held_out import AttributeGroups, LossTermMitigation
from fairdml.models.lightning_probe import is_logging_step
from fairdml.models.precision import full_precision, without_autocast
from fairdml.utils.rules import Rule, above, at_least, between, rule_problems

# torch.quantile takes at most 2**24 values: the test split's threshold is estimated from that many negative pairs
MAX_THRESHOLD_PAIRS = 2**24


def cosine_similarities(embeddings: Tensor) -> Tensor:
    """(N, N) cosine similarities of the rows of `embeddings` (normalised here; already unit rows are unchanged).

    Example:
        >>> cosine_similarities(torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]))
        tensor([[ 1.,  0., -1.],
                [ 0.,  1.,  0.],
                [-1.,  0.,  1.]])
    """
    unit = F.normalize(embeddings, dim=1)
    return unit @ unit.T


def negative_pairs(labels: Tensor) -> Tensor:
    """(N, N) bool: the pairs of different classes (CIFP's non-target similarities)."""
    return labels[:, None] != labels[None, :]


def unified_threshold(similarities: Tensor, negatives: Tensor, target_fpr: float) -> Tensor:
    """CIFP's T_u: the (1 − u) quantile of the negative pairs' similarities (linear interpolation), detached, so
    that a share u of them lie above it.

    Example:
        >>> s = torch.tensor([[1.0, 0.1, 0.9], [0.1, 1.0, 0.5], [0.9, 0.5, 1.0]])
        >>> unified_threshold(s, negative_pairs(torch.tensor([0, 1, 2])), 0.5).item()
        0.5
    """
    values = similarities.detach()[negatives]
    return torch.quantile(values, 1.0 - target_fpr)


def soft_instance_fpr(similarities: Tensor, negatives: Tensor, threshold: Tensor, temperature: float) -> Tensor:
    """(N,) FPR_i = mean over i's negatives j of sigmoid((s_ij − T_u) / t); 0 for a row without negatives."""
    exceed = torch.sigmoid((similarities - threshold) / temperature) * negatives
    return exceed.sum(dim=1) / negatives.sum(dim=1).clamp_min(1)


class PenaltyTerms(NamedTuple):
    """`fpr_penalty`'s result: the penalty (before `strength`), T_u, and each instance's soft FPR (N,) (0 for a
    row without negatives)."""

    penalty: Tensor
    threshold: Tensor
    instance_fpr: Tensor


def fpr_penalty(embeddings: Tensor, labels: Tensor, target_fpr: float, temperature: float) -> PenaltyTerms:
    """The batch's CIFP penalty mean_i w_i · FPR_i, w_i = FPR_i / mean_k FPR_k detached (the module docstring).

    Rows without a negative pair take no part; a batch of one class gives a zero penalty (with a gradient of
    zeros, so the step's graph is the same).

    Args:
        embeddings: (N, D) class embeddings (cosine similarities: normalised here).
        labels: (N,) class labels.
        target_fpr: u, the total FPR the threshold is set for (0 < u < 1).
        temperature: t, the soft indicator's temperature (> 0).

    Example:
        >>> embeddings = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        >>> terms = fpr_penalty(embeddings, torch.arange(8) // 2, target_fpr=0.25, temperature=0.05)
        >>> bool(terms.penalty > 0), terms.instance_fpr.shape
        (True, torch.Size([8]))
    """
    similarities = cosine_similarities(embeddings)
    negatives = negative_pairs(labels)
    rows = negatives.any(dim=1)
    if not bool(rows.any()):
        zero = embeddings.sum() * 0.0
        return PenaltyTerms(zero, zero.detach(), torch.zeros_like(embeddings[:, 0]))
    threshold = unified_threshold(similarities, negatives, target_fpr)
    fpr = soft_instance_fpr(similarities, negatives, threshold, temperature)
    kept = fpr[rows]
    weights = (kept / kept.mean().clamp_min(torch.finfo(kept.dtype).tiny)).detach()
    return PenaltyTerms((weights * kept).mean(), threshold, fpr)


@torch.no_grad()
def instance_fpr(
    embeddings: Tensor,
    labels: Tensor,
    target_fpr: float,
    max_pairs: int = MAX_THRESHOLD_PAIRS,
    seed: int = 0,
    block: int | None = None,
) -> tuple[Tensor, float]:
    """CIFP's hard instance FPRs of a whole split: T_u for a total FPR of u over the negative pairs, then each
    instance's share of its negatives above T_u. Computed a block of rows at a time (no N × N matrix is held);
    with more than `max_pairs` pairs, T_u is estimated from a seeded sample of rows. `block`: rows per block
    (None: about 4M similarities a block).

    Returns:
        (N,) float64 FPR_i (NaN for a sample without negatives) and T_u.

    Example:
        >>> embeddings = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
        >>> fpr, threshold = instance_fpr(embeddings, torch.arange(40) // 4, target_fpr=0.1)
        >>> fpr.shape, round(float(fpr.mean()), 2)
        (torch.Size([40]), 0.1)
    """
    unit = F.normalize(embeddings.double(), dim=1)
    n = len(unit)
    rows = torch.arange(n)
    if n * n > max_pairs:
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randperm(n, generator=generator)[: max(1, max_pairs // n)].sort().values
    block = block or max(1, min(n, 2**22 // max(n, 1)))
    values = [
        (unit[chunk] @ unit.T)[negative_pairs_between(labels[chunk], labels)]
        for chunk in rows.split(block)
    ]  # fmt: skip
    negatives_seen = torch.cat(values)
    if not len(negatives_seen):
        return torch.full((n,), math.nan, dtype=torch.float64), math.nan
    threshold = torch.quantile(negatives_seen, 1.0 - target_fpr)
    fpr = torch.empty(n, dtype=torch.float64)
    for start in range(0, n, block):
        chunk = slice(start, start + block)
        negatives = negative_pairs_between(labels[chunk], labels)
        above = ((unit[chunk] @ unit.T) > threshold) & negatives
        counts = negatives.sum(dim=1)
        fpr[chunk] = torch.where(counts > 0, above.sum(dim=1).double() / counts.clamp_min(1), math.nan)
    return fpr, float(threshold)


def negative_pairs_between(row_labels: Tensor, labels: Tensor) -> Tensor:
    """(R, N) bool: pairs of a row sample and any sample of another class."""
    return row_labels[:, None] != labels[None, :]


def fpr_summary(fpr: Tensor, groups: Tensor, attribute: AttributeGroups) -> dict[str, Any]:
    """Mean and standard deviation (population) of the instance FPRs, overall and per group; `gap` is the
    largest group mean minus the smallest. Samples without negatives (NaN) are left out."""
    finite = ~torch.isnan(fpr)
    fpr, groups = fpr[finite], groups[finite]

    def stats(values: Tensor) -> dict[str, Any]:
        if not len(values):
            return {"n": 0, "mean_fpr": None, "fpr_std": None}
        return {"n": len(values), "mean_fpr": float(values.mean()), "fpr_std": float(values.std(unbiased=False))}

    per_group = {attribute.name_of(int(code)): stats(fpr[groups == code]) for code in torch.unique(groups)}
    means = [entry["mean_fpr"] for entry in per_group.values() if entry["mean_fpr"] is not None]
    return {
        **stats(fpr),
        "groups": per_group,
        "gap": max(means) - min(means) if len(means) > 1 else None,
    }


_RULES = (
    Rule("strength", at_least(0), ">= 0"),
    Rule("target_fpr", between(0, 1, low_open=True, high_open=True), "in (0, 1)"),
    Rule("temperature", above(0), "> 0"),
)


class FPRPenalty(LossTermMitigation):
    """CIFP (Xu et al., CVPR 2021): a penalty that makes the instances' false-positive rates consistent.

    Every training step adds the loss term `fpr_penalty` = strength · mean_i w_i · FPR_i over the batch's
    negative pairs (`fpr_penalty`, the module docstring gives CIFP's definitions and the adaptation to pair-based
    DML); it needs no group labels. It logs `fpr_penalty/threshold` (T_u) and `fpr_penalty/instance_fpr_std`.
    After the test, `report["mitigations"]["fpr_penalty"]["measured"]` holds the test split's hard instance FPRs
    at the threshold for a total FPR of `target_fpr`: their mean and spread overall and per group (`fpr_summary`).

    Args:
        strength: λ, the penalty's weight in the loss (0: the term is zero and training is unchanged).
        target_fpr: u, the total FPR the unified threshold is set for (0 < u < 1); with batches of about 64
            samples, 0.05 leaves about 190 negative pairs above it.
        temperature: t of the soft count sigmoid((s − T_u) / t) (> 0); cosine similarities within about ±2t of
            T_u get a gradient.
        attribute: the attribute whose groups `measure` reports; None: the data module's `group_attribute`.
        attribute_column: with data other than fairdml's `DMLDataModule`, the column of `batch["attributes"]`
            that `measure` groups by (None: the first); its codes are named by number.

    Raises:
        ValueError: at construction, listing every setting out of range; in `setup`, for an attribute the data
            lacks.

    Example:
        A callback of any Trainer with a `MitigationHost` module (DMLModule), or `callbacks=fpr_penalty`:

        >>> penalty = FPRPenalty(strength=2.0, target_fpr=0.05)
        >>> trainer = L.Trainer(max_epochs=1, callbacks=[penalty], logger=False, enable_progress_bar=False)
        >>> penalty.describe()["settings"]["strength"]
        2.0
        >>> FPRPenalty(strength=-1, target_fpr=1.5)
        Traceback (most recent call last):
        ...
        ValueError: FPRPenalty: strength=-1 must be >= 0; target_fpr=1.5 must be in (0, 1)
    """

    name = "fpr_penalty"
    title = "Instance false-positive-rate penalty (CIFP)"
    summary = (
        "Each batch's negative pairs above one threshold (set so that a share target_fpr of them lie above it) "
        "are pushed down, each instance weighted by its false-positive rate over the batch's mean, so the "
        "instances' false-positive rates become alike without group labels (Xu et al., CVPR 2021, adapted from "
        "a softmax loss's identity weights to a DML batch's negative pairs)."
    )

    def __init__(
        self,
        strength: float = 1.0,
        target_fpr: float = 0.05,
        temperature: float = 0.05,
        attribute: str | None = None,
        attribute_column: int | None = None,
    ) -> None:
        super().__init__()
        problems = rule_problems({"strength": strength, "target_fpr": target_fpr, "temperature": temperature}, _RULES)
        if problems:
            raise ValueError(f"FPRPenalty: {'; '.join(problems)}")
        self.save_hyperparameters()

    def loss_terms(self, pl_module: MitigationHost, step: dict) -> dict[str, Tensor]:
        """{"fpr_penalty": strength · the batch's CIFP penalty}, in float32 outside autocast."""
        self._term_calls += 1
        hp = self.hparams
        embeddings = full_precision(step["embeddings"])
        with without_autocast(embeddings.device):
            terms = fpr_penalty(embeddings, step["batch"]["label"], hp.target_fpr, hp.temperature)
        if is_logging_step(pl_module):
            batch_size = len(embeddings)
            pl_module.log("fpr_penalty/threshold", terms.threshold, batch_size=batch_size)
            spread = terms.instance_fpr.detach().std(unbiased=False)
            pl_module.log("fpr_penalty/instance_fpr_std", spread, batch_size=batch_size)
        return {"fpr_penalty": hp.strength * terms.penalty}

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        """The test split's instance FPRs at T_u for a total FPR of `target_fpr` (`instance_fpr`, `fpr_summary`)."""
        held_out = self._held_out.gathered(pl_module)
        if held_out is None or self._groups is None:
            return None
        u = self.hparams.target_fpr
        fpr, threshold = instance_fpr(held_out["embeddings"], held_out["label"], u)
        groups = held_out["attributes"][:, self._groups.column].long()
        summary = fpr_summary(fpr, groups, self._groups)
        return {"target_fpr": u, "threshold": threshold, "attribute": self._groups.attribute, **summary}
