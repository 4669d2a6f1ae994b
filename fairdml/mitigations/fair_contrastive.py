"""FSCL, the fair supervised contrastive loss, as a mitigation beside the DML loss (`fair_contrastive`).

Park, Lee, Lee, Hwang, Kim and Byun, "Fair Contrastive Learning for Facial Attribute Classification", CVPR 2022
(arXiv:2203.16209), built on SupCon (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020).

What is FSCL's: SupCon on normalised embeddings z with temperature τ, where for an anchor i the positives P(i)
are the other samples of its class, and the denominator keeps the positives and only those negatives that share
the anchor's sensitive attribute s_i. A negative of another sensitive group is not pushed away, so the encoder is
not paid for separating the groups; it is paid for separating classes within a group. FSCL+ adds a group-wise
normalisation, so that a demographic group's weight in the loss does not grow with its share of the data.

As implemented, with s_ij = z_i · z_j / τ and D(i) = P(i) ∪ {a : y_a ≠ y_i, s_a = s_i}:

    ℓ_i = −1/|P(i)| Σ_{p ∈ P(i)} [ s_ip − log Σ_{a ∈ D(i)} exp(s_ia) ]   (anchors with P(i) = ∅ take no part)
    L   = mean_i ℓ_i,  or with group_normalisation  L = mean_g mean_{i : s_i = g} ℓ_i

The group-wise normalisation divides each anchor's term by the number of anchors of its sensitive group (then
averages over the groups in the batch), so every sensitive group contributes equally. The paper's normalising
groups could not be checked against its text here; in a DML batch (classes are identities, drawn a fixed number
of samples each) a (class, attribute) cell would weight every class alike and change nothing, so the sensitive
group is the one that matters. The anchors' mean (not SupCon's sum) keeps the loss independent of batch size.

What is adapted: the paper trains the encoder with FSCL alone, then a linear classifier; here FSCL is a loss term
of weight `strength` added to the host's DML loss, on the class embeddings the DML loss reads.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from fairdml.mitigations.base import MitigationHost
from fairdml.mitigations.held_out import AttributeGroups, LossTermMitigation
from fairdml.models.precision import full_precision, without_autocast
from fairdml.utils.rules import Rule, above, at_least, rule_problems


def fair_supcon_terms(
    embeddings: Tensor, labels: Tensor, attributes: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    """Each anchor's FSCL term ℓ_i (N,) and whether it has a positive (N,) bool (ℓ_i is 0 where it has none).

    Args:
        embeddings: (N, D) embeddings (normalised here).
        labels: (N,) class labels.
        attributes: (N,) sensitive attribute codes.
        temperature: τ (> 0).

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
        >>> losses, anchors = fair_supcon_terms(z, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1]), 0.1)
        >>> losses.abs().max().item(), anchors.all().item()  # all negatives are of the other group: D(i) = P(i)
        (0.0, True)
    """
    unit = F.normalize(embeddings, dim=1)
    logits = unit @ unit.T / temperature
    n = len(unit)
    others = ~torch.eye(n, dtype=torch.bool, device=unit.device)
    same_class = (labels[:, None] == labels[None, :]) & others
    same_attribute = attributes[:, None] == attributes[None, :]
    kept = same_class | (~same_class & others & same_attribute)  # D(i): positives and same-group negatives
    masked = logits.masked_fill(~kept, -math.inf)
    # a row with nothing kept would give logsumexp(-inf, ...) a NaN gradient: it has no positive, so no term
    masked = torch.where(kept.any(dim=1, keepdim=True), masked, torch.zeros_like(masked))
    positives = same_class.sum(dim=1)
    anchors = positives > 0
    log_denominator = torch.where(
        anchors, torch.logsumexp(masked, dim=1), torch.zeros_like(positives, dtype=logits.dtype)
    )
    log_prob = logits - log_denominator[:, None]
    losses = -(log_prob * same_class).sum(dim=1) / positives.clamp_min(1)
    return losses, anchors


def fair_supcon_loss(
    embeddings: Tensor, labels: Tensor, attributes: Tensor, temperature: float, group_normalisation: bool = True
) -> Tensor:
    """FSCL over the batch: the anchors' mean of ℓ_i, or with `group_normalisation` the mean over the sensitive
    groups of each group's mean (FSCL+); zero (with a gradient of zeros) when no anchor has a positive.

    Example:
        >>> z = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
        >>> labels, attributes = torch.arange(12) // 3, (torch.arange(12) // 3) % 2
        >>> bool(fair_supcon_loss(z, labels, attributes, 0.1) > 0)
        True
    """
    losses, anchors = fair_supcon_terms(embeddings, labels, attributes, temperature)
    if not bool(anchors.any()):
        return embeddings.sum() * 0.0
    losses, groups = losses[anchors], attributes[anchors]
    if not group_normalisation:
        return losses.mean()
    codes, group_of = torch.unique(groups, return_inverse=True)
    sums = torch.zeros(len(codes), dtype=losses.dtype, device=losses.device).index_add_(0, group_of, losses)
    counts = torch.bincount(group_of, minlength=len(codes)).to(losses.dtype)
    return (sums / counts).mean()


PAIR_KINDS = ("same_class", "other_class_same_attribute", "other_class_other_attribute")


@torch.no_grad()
def similarity_profile(
    embeddings: Tensor, labels: Tensor, attributes: Tensor, attribute: AttributeGroups, block: int = 1024
) -> dict[str, Any]:
    """What FSCL acts on, measured on a split: the mean cosine similarity of the pairs (i, j ≠ i) of the same
    class, of another class in i's sensitive group (FSCL's negatives), and of another class in another group (the
    negatives FSCL leaves out), overall and per anchor group. `attribute_separation` = other_class_same_attribute −
    other_class_other_attribute: how much closer a group's samples are to their own group's other classes than
    to the other groups' (SupCon pays for raising it, FSCL does not). Computed a block of rows at a time.

    Example:
        >>> from fairdml.mitigations.held_out import AttributeGroups
        >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> profile = similarity_profile(z, torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 1]),
        ...                              AttributeGroups("style", 0, ("a", "b")))
        >>> [profile[kind] for kind in ("other_class_same_attribute", "other_class_other_attribute")]
        [1.0, 0.0]
        >>> profile["attribute_separation"]
        1.0
    """
    unit = F.normalize(embeddings.double(), dim=1)
    n = len(unit)
    sums = torch.zeros(n, len(PAIR_KINDS), dtype=torch.float64)
    counts = torch.zeros(n, len(PAIR_KINDS), dtype=torch.float64)
    for start in range(0, n, block):
        rows = slice(start, start + block)
        similarities = unit[rows] @ unit.T
        others = torch.ones_like(similarities, dtype=torch.bool)
        others[torch.arange(len(similarities)), torch.arange(start, start + len(similarities))] = False
        same_class = labels[rows, None] == labels[None, :]
        same_attribute = attributes[rows, None] == attributes[None, :]
        masks = (same_class & others, ~same_class & same_attribute, ~same_class & ~same_attribute)
        for k, mask in enumerate(masks):
            sums[rows, k] = (similarities * mask).sum(dim=1)
            counts[rows, k] = mask.sum(dim=1)

    def means(rows: Tensor) -> dict[str, Any]:
        total, number = sums[rows].sum(dim=0), counts[rows].sum(dim=0)
        values = {kind: float(total[k] / number[k]) if number[k] > 0 else None for k, kind in enumerate(PAIR_KINDS)}
        same, other = values["other_class_same_attribute"], values["other_class_other_attribute"]
        separation = same - other if same is not None and other is not None else None
        return {"n": int(rows.sum()), **values, "attribute_separation": separation}

    everyone = torch.ones(n, dtype=torch.bool)
    groups = {attribute.name_of(int(code)): means(attributes == code) for code in torch.unique(attributes)}
    return {**means(everyone), "groups": groups}


_RULES = (
    Rule("strength", at_least(0), ">= 0"),
    Rule("temperature", above(0), "> 0"),
    Rule("group_normalisation", lambda v: isinstance(v, bool), "true or false"),
)


class FairContrastive(LossTermMitigation):
    """FSCL (Park et al., CVPR 2022): a supervised contrastive loss that does not separate sensitive groups.

    Every training step adds the loss term `fair_contrastive` = strength · FSCL(+) of the batch's class
    embeddings (`fair_supcon_loss`; the module docstring gives the loss, the group-wise normalisation and what
    is adapted: the paper trains with FSCL alone, here it is added to the host's DML loss). After the test,
    `report["mitigations"]["fair_contrastive"]["measured"]` holds the test split's mean cosine similarity of
    same-class pairs, of other-class pairs in the anchor's group and of other-class pairs in another group,
    overall and per group, and the difference of the last two, `attribute_separation` (`similarity_profile`).

    Args:
        strength: the term's weight beside the DML loss (0: the term is zero and training is unchanged).
        temperature: τ of the contrastive logits z_i · z_j / τ (> 0; SupCon and FSCL use 0.1).
        attribute: the sensitive attribute (a name in the data's `attributes`) whose groups keep their negatives
            apart and, with `group_normalisation`, weigh alike; None: the data module's `group_attribute`.
        group_normalisation: FSCL+'s group-wise normalisation (every sensitive group of the batch weighs alike).
        attribute_column: with data other than fairdml's `DMLDataModule`, the column of `batch["attributes"]`
            that holds `attribute` (None: the first); its codes are named by number.

    Raises:
        ValueError: at construction, listing every setting out of range; in `setup`, for an attribute the data
            lacks.

    Example:
        A callback of any Trainer with a `MitigationHost` module (DMLModule), or `callbacks=fair_contrastive`:

        >>> fair = FairContrastive(strength=0.5, attribute="style")
        >>> trainer = L.Trainer(max_epochs=1, callbacks=[fair], logger=False, enable_progress_bar=False)
        >>> fair.describe()["settings"]["group_normalisation"]
        True
        >>> FairContrastive(temperature=0)
        Traceback (most recent call last):
        ...
        ValueError: FairContrastive: temperature=0 must be > 0
    """

    name = "fair_contrastive"
    title = "Fair supervised contrastive loss (FSCL)"
    summary = (
        "A supervised contrastive loss on the class embeddings whose denominator keeps, besides the anchor's "
        "class, only the negatives of the anchor's sensitive group, so the encoder is not paid for separating "
        "the groups; with group_normalisation each sensitive group weighs alike (Park et al., CVPR 2022, FSCL+, "
        "added to the DML loss with weight strength)."
    )

    def __init__(
        self,
        strength: float = 0.1,
        temperature: float = 0.1,
        attribute: str | None = "style",
        group_normalisation: bool = True,
        attribute_column: int | None = None,
    ) -> None:
        super().__init__()
        settings = {"strength": strength, "temperature": temperature, "group_normalisation": group_normalisation}
        problems = rule_problems(settings, _RULES)
        if problems:
            raise ValueError(f"FairContrastive: {'; '.join(problems)}")
        self.save_hyperparameters()

    def loss_terms(self, pl_module: MitigationHost, step: dict) -> dict[str, Tensor]:
        """{"fair_contrastive": strength · FSCL(+) of the batch}, in float32 outside autocast."""
        self._term_calls += 1
        assert self._groups is not None, "FairContrastive.setup has not run"
        hp = self.hparams
        batch = step["batch"]
        embeddings = full_precision(step["embeddings"])
        with without_autocast(embeddings.device):
            loss = fair_supcon_loss(
                embeddings, batch["label"], batch["attributes"][:, self._groups.column], hp.temperature,
                hp.group_normalisation,
            )  # fmt: skip
        return {"fair_contrastive": hp.strength * loss}

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        """The test split's similarity profile by sensitive group (`similarity_profile`)."""
        held_out = self._held_out.gathered(pl_module)
        if held_out is None or self._groups is None:
            return None
        codes = held_out["attributes"][:, self._groups.column].long()
        profile = similarity_profile(held_out["embeddings"], held_out["label"], codes, self._groups)
        return {"attribute": self._groups.attribute, **profile}
