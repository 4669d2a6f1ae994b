"""The group-weighting mitigations act through the module's `weight_loss_terms` hook: the module's loss object and
its reducer are the same objects before, during and after a fit, the weights reach the loss at every step, and a
user's own module that follows the MitigationHost recipe is weighted the same way."""

from __future__ import annotations

import lightning as L
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import fairdml
from fairdml.config import compose_config, to_container
from fairdml.losses import create_loss, set_group_weights

QUIET = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}


@pytest.mark.parametrize("mitigation", [fairdml.ReweightedLoss, fairdml.WorstGroupLoss])
def test_the_module_keeps_its_loss_objects_and_is_weighted_only_during_fit(mitigation, tiny_overrides, tmp_path):
    cfg = compose_config(tiny_overrides)
    datamodule = fairdml.DMLDataModule(cfg.data, seed=cfg.seed)
    module = fairdml.DMLModule.from_config(to_container(cfg), datamodule)
    loss, reducer = module.loss, module.loss.reducer
    callback = mitigation()
    calls = []
    weights = callback._group_weights

    def spy(losses: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        calls.append((groups.clone(), module.loss is loss and module.loss.reducer is reducer))
        return weights(losses, groups)

    callback._group_weights = spy
    trainer = L.Trainer(
        max_steps=3, limit_val_batches=0, callbacks=[callback], default_root_dir=tmp_path, **QUIET
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    assert module.loss is loss and module.loss.reducer is reducer  # nothing swapped in or out
    assert len(calls) == 3 and all(set(groups.tolist()) <= {0, 1} and same for groups, same in calls)
    assert reducer.group_weights is None and reducer.groups is None  # unweighted again after the fit


def test_a_second_weighting_and_a_per_class_loss_are_refused():
    loss = create_loss("margin", 4, 8, group_weightable=True)
    first = fairdml.ReweightedLoss()._group_weights
    set_group_weights(loss, first)
    set_group_weights(loss, first)  # the same weighting again (a repeated setup) is no conflict
    with pytest.raises(ValueError, match="already weighted by group"):
        set_group_weights(loss, fairdml.WorstGroupLoss()._group_weights)
    with pytest.raises(ValueError, match="ProxyAnchorLoss cannot be weighted by group"):
        set_group_weights(create_loss("proxy_anchor", 4, 8, group_weightable=True), first)
    with pytest.raises(TypeError, match="built without group weighting"):
        set_group_weights(create_loss("triplet", 4, 8), first)


class _WeightableEmbedder(L.LightningModule):
    """A user's module following MitigationHost's recipe for `weight_loss_terms` (no fairdml base class)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = timm.create_model("test_resnet", pretrained=False, num_classes=0)
        self.head = nn.Linear(self.backbone.num_features, 16)
        self.loss = create_loss("triplet", 12, 16, group_weightable=True)
        self.feature_dim, self.embedding_dim = self.backbone.num_features, 16
        self.auxiliary, self.reports, self.loss_terms = nn.ModuleDict(), {}, []

    def add_auxiliary(self, name, module, lr=None, loss=False):  # noqa: ANN001 - the protocol's signature
        self.auxiliary[name] = module

    def add_loss_term(self, term):  # noqa: ANN001
        self.loss_terms.append(term)  # the group weighting registers none

    def weight_loss_terms(self, group_weights):  # noqa: ANN001
        set_group_weights(self.loss, group_weights)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        embeddings = F.normalize(self.head(self.backbone(batch["image"])), dim=1)
        with self.loss.reducer.for_groups(batch["attributes"][:, 0]):
            return self.loss(embeddings, batch["label"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_a_user_module_with_the_recipe_is_weighted(tiny_overrides, tmp_path):
    """The data come from fairdml's data module (the weights are its training counts); the module is the user's."""
    datamodule = fairdml.DMLDataModule(compose_config(tiny_overrides).data, seed=0)
    module, callback = _WeightableEmbedder(), fairdml.WorstGroupLoss(step_size=0.5)
    trainer = L.Trainer(max_steps=2, limit_val_batches=0, callbacks=[callback], default_root_dir=tmp_path, **QUIET)
    trainer.fit(module, datamodule=datamodule)
    assert callback.q is not None and not torch.equal(callback.q, torch.full_like(callback.q, 0.5))  # q moved
    assert module.loss.reducer.group_weights is None
