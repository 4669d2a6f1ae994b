"""Name → pytorch-metric-learning loss / miner, so a config string picks them (wrap, don't copy)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from pytorch_metric_learning import losses, miners
from torch import Tensor, nn

LOSSES: dict[str, Callable[..., nn.Module]] = {
    "margin": losses.MarginLoss,
    "triplet": losses.TripletMarginLoss,
    "multi_similarity": losses.MultiSimilarityLoss,
    "proxy_anchor": losses.ProxyAnchorLoss,
    "contrastive": losses.ContrastiveLoss,
    "circle": losses.CircleLoss,
    "ntxent": losses.NTXentLoss,
}
MINERS: dict[str, Callable[..., nn.Module]] = {
    "distance_weighted": miners.DistanceWeightedMiner,
    "semihard": lambda **kw: miners.TripletMarginMiner(type_of_triplets="semihard", **kw),
    "hard": lambda **kw: miners.TripletMarginMiner(type_of_triplets="hard", **kw),
    "multi_similarity": miners.MultiSimilarityMiner,
    "batch_hard": miners.BatchHardMiner,
    "pair_margin": miners.PairMarginMiner,
}
# Proxy losses need the number of classes and the embedding size.
NEEDS_CLASSES = {"proxy_anchor"}
MARGIN_PER_CLASS = {"margin"}


def create_loss(
    name: str, num_classes: int, embedding_dim: int, *, group_weightable: bool = False, **kwargs: Any
) -> nn.Module:
    """The PML loss `name` with `kwargs`; `group_weightable`: built with a `GroupWeightedReducer` around its own
    reducer (unweighted until given weights) when its terms are per sample, pair or triplet.

    Example:
        >>> loss = create_loss("triplet", 10, 32, group_weightable=True, margin=0.1)
        >>> type(loss.reducer).__name__, type(loss.reducer.inner).__name__, loss.reducer.group_weights is None
        ('GroupWeightedReducer', 'AvgNonZeroReducer', True)
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {sorted(LOSSES)}")
    if name in NEEDS_CLASSES:
        kwargs = {"num_classes": num_classes, "embedding_size": embedding_dim, **kwargs}
    if name in MARGIN_PER_CLASS and kwargs.get("learn_beta"):
        kwargs.setdefault("num_classes", num_classes)  # one learnable beta per class, as in Wu et al.
    loss = LOSSES[name](**kwargs)
    if group_weightable and name in SAMPLE_INDEXED:
        # PML makes its default reducer inside the constructor, so the weighting is composed around it here,
        # while the loss is being built; afterwards only its weights change (DMLModule.weight_loss_terms)
        loss.reducer = GroupWeightedReducer(loss.reducer, loss_name=type(loss).__name__)
    return loss


def create_miner(name: str | None, **kwargs: Any) -> nn.Module | None:
    if name is None:
        return None
    if name not in MINERS:
        raise ValueError(f"unknown miner {name!r}; valid miners: {sorted(MINERS)} or null")
    return MINERS[name](**kwargs)


# ---- per-group weighting of a loss (the reweighted and worst_group mitigations) ----------------------------
# Losses whose terms PML indexes by the batch's samples (element: the sample; pair, triplet: the anchor first).
SAMPLE_INDEXED = ("margin", "triplet", "contrastive", "multi_similarity")
GroupWeights = Callable[[Tensor, Tensor], Tensor]  # (item losses (M,), their anchors' groups (M,)) -> (G,)


def anchors_of(info: dict) -> Tensor | None:
    """The anchor sample of each item of one PML sub-loss: the sample itself ("element"), the first index of a
    pair or triplet; None for an already reduced (batch-level) term, which no sample owns."""
    if info["reduction_type"] == "already_reduced" or not torch.is_tensor(info["losses"]):
        return None
    indices = info["indices"]
    return indices if info["reduction_type"] == "element" else indices[0]


def check_group_weightable(loss: nn.Module) -> None:
    """Refuse a loss whose terms are not indexed by the batch's samples (proxy losses index their terms by class),
    since weighting those by the anchor's group would silently weight the wrong terms."""
    if not isinstance(loss, tuple(LOSSES[name] for name in SAMPLE_INDEXED)):
        raise ValueError(
            f"the loss {type(loss).__name__} cannot be weighted by group: its terms are not per sample, pair or "
            f"triplet of the batch (proxy losses such as proxy_anchor are per class); use one of {list(SAMPLE_INDEXED)}"
        )


class GroupWeightedReducer(nn.Module):
    """A pytorch-metric-learning reducer that multiplies each sample, pair or triplet loss by the weight of its
    anchor's group, then reduces as the loss's own reducer (`inner`) does.

    Written here because PML weights losses only as a whole; this keeps every loss's own reduction (average of
    non-zero terms, divisor, mean), so with all weights 1 the loss is exactly the unweighted one, and with
    `group_weights` None it is `inner` itself. `groups` (B,) is set for each batch (`for_groups`);
    `group_weights(losses, anchor_groups)` returns the (G,) weights, from the detached item losses when it
    needs them (GroupDRO) or ignoring them (fixed weights).

    Args:
        inner: the loss's own reducer.
        group_weights: the weighting; None: unweighted (a loss built `group_weightable` starts so).
        loss_name: the loss's name, for errors.

    Example:
        >>> loss = create_loss("triplet", 2, 4, group_weightable=True)  # every triplet's loss: margin 0.05
        >>> embeddings, labels = torch.eye(4), torch.tensor([0, 0, 1, 1])
        >>> loss.reducer.group_weights = lambda item_losses, item_groups: torch.tensor([1.0, 3.0])
        >>> with loss.reducer.for_groups(labels):  # groups = classes here: group 1's triplets count 3 times
        ...     round(loss(embeddings, labels).item(), 4)
        0.1
    """

    def __init__(
        self, inner: nn.Module, group_weights: GroupWeights | None = None, loss_name: str = "the loss"
    ) -> None:
        super().__init__()
        self.inner, self.group_weights, self.loss_name = inner, group_weights, loss_name
        self.groups: Tensor | None = None

    @contextmanager
    def for_groups(self, groups: Tensor) -> Iterator[None]:
        """The batch's group codes (B,) for the loss calls inside the block, forgotten after it."""
        self.groups = groups
        try:
            yield
        finally:
            self.groups = None

    def forward(self, loss_dict: dict, embeddings: Tensor, labels: Tensor) -> Tensor:
        if self.group_weights is None:
            return self.inner(loss_dict, embeddings, labels)
        if self.groups is None:
            raise RuntimeError("GroupWeightedReducer: the batch's groups were not set before the loss was called")
        anchors = {name: anchors_of(info) for name, info in loss_dict.items()}
        weighted = [name for name, anchor in anchors.items() if anchor is not None]
        if not weighted:
            return self.inner(loss_dict, embeddings, labels)  # no term this batch (e.g. no mined triplet)
        # One value per item, whatever the loss's layout (multi_similarity's are (B, 1)).
        items = torch.cat([loss_dict[n]["losses"].detach().reshape(len(anchors[n]), -1).mean(1) for n in weighted])
        item_groups = torch.cat([self.groups[anchors[name]] for name in weighted])
        weights = self.group_weights(items, item_groups)
        out = dict(loss_dict)
        for name in weighted:
            info = loss_dict[name]
            factor = weights[self.groups[anchors[name]]].to(info["losses"].dtype)
            shape = (-1,) + (1,) * (info["losses"].ndim - 1)  # item-wise, never broadcast across items
            out[name] = {**info, "losses": info["losses"] * factor.reshape(shape)}
        return self.inner(out, embeddings, labels)


def set_group_weights(loss: nn.Module, group_weights: GroupWeights | None) -> None:
    """Give a loss built `group_weightable` (create_loss) its group weighting; None: unweighted again. What a
    module's `weight_loss_terms` does (the group-weighting mitigations' hook): its loss object stays the same.

    Raises:
        ValueError: for a loss whose terms are not per sample, pair or triplet (proxy losses are per class), or
            when another weighting is set.
        TypeError: for a loss built without `group_weightable`.

    Example:
        >>> loss = create_loss("triplet", 2, 4, group_weightable=True)
        >>> set_group_weights(loss, lambda item_losses, item_groups: torch.tensor([1.0, 3.0]))
        >>> set_group_weights(create_loss("proxy_anchor", 2, 4), lambda item_losses, item_groups: None)
        Traceback (most recent call last):
        ...
        ValueError: the loss ProxyAnchorLoss cannot be weighted by group: ...
    """
    reducer = getattr(loss, "reducer", None)
    if not isinstance(reducer, GroupWeightedReducer):
        check_group_weightable(loss)  # a per-class loss: the error names it
        raise TypeError(
            f"{type(loss).__name__} was built without group weighting: create_loss(..., group_weightable=True)"
        )
    if group_weights is not None and reducer.group_weights not in (None, group_weights):
        raise ValueError("the loss is already weighted by group; use one of reweighted, worst_group")
    reducer.group_weights = group_weights
