"""Name → pytorch-metric-learning loss / miner, so a config string picks them (wrap, don't copy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytorch_metric_learning import losses, miners
from torch import nn

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


def create_loss(name: str, num_classes: int, embedding_dim: int, **kwargs: Any) -> nn.Module:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {sorted(LOSSES)}")
    if name in NEEDS_CLASSES:
        kwargs = {"num_classes": num_classes, "embedding_size": embedding_dim, **kwargs}
    if name in MARGIN_PER_CLASS and kwargs.get("learn_beta"):
        kwargs.setdefault("num_classes", num_classes)  # one learnable beta per class, as in Wu et al.
    return LOSSES[name](**kwargs)


def create_miner(name: str | None, **kwargs: Any) -> nn.Module | None:
    if name is None:
        return None
    if name not in MINERS:
        raise ValueError(f"unknown miner {name!r}; valid miners: {sorted(MINERS)} or null")
    return MINERS[name](**kwargs)
