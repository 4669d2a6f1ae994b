"""PARADE plugs into a user's own LightningModule (not a DMLModule) that meets the `MitigationHost` protocol."""

from __future__ import annotations

import json
import re

import lightning as L
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses
from torch import nn

import fairdml
from fairdml.config import compose_config


class MyEmbedder(L.LightningModule):
    """A plain Lightning DML module with the protocol's five members; fairdml is not its base class."""

    def __init__(self, embedding_dim: int = 16):
        super().__init__()
        self.backbone = timm.create_model("test_resnet", pretrained=False, num_classes=0)
        self.head = nn.Linear(self.backbone.num_features, embedding_dim)
        self.loss = losses.TripletMarginLoss(margin=0.2)
        self.feature_dim, self.embedding_dim = self.backbone.num_features, embedding_dim
        self.auxiliary, self.reports, self.loss_terms = nn.ModuleDict(), {}, []

    def add_auxiliary(self, name, module, lr=None, loss=False):  # noqa: ANN001 - the protocol's signature
        self.auxiliary[name] = module  # trained by configure_optimizers below, at the module's own rate

    def add_loss_term(self, term):  # noqa: ANN001
        self.loss_terms.append(term)

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)
        return features, F.normalize(self.head(features), dim=1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        features, embeddings = self.embed(batch["image"])
        loss = self.loss(embeddings, batch["label"])
        step = {"features": features, "embeddings": embeddings, "batch": batch}
        for term in self.loss_terms:
            loss = loss + sum(term(self, step).values())
        return loss

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        features, embeddings = self.embed(batch["image"])
        return {"features": features, "embeddings": embeddings}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])  # bf16: the test-end heads met bf16 features
def test_parade_trains_a_user_module_and_reports(tiny_overrides, tmp_path, precision):
    datamodule = fairdml.DMLDataModule(compose_config(tiny_overrides).data, seed=0)
    module = MyEmbedder()
    assert isinstance(module, fairdml.MitigationHost) and not isinstance(module, fairdml.DMLModule)
    parade = fairdml.Parade(
        attributes=["style"], strength=0.1, encoder_objective="covariance", correlation="cosine",
        projection_hidden=16, attribute_embedding_dim=8, measure_steps=20,
    )  # fmt: skip
    trainer = L.Trainer(
        max_epochs=1, callbacks=[parade], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        limit_val_batches=0, use_distributed_sampler=False, default_root_dir=tmp_path, precision=precision,
    )  # fmt: skip
    before = {k: v.clone() for k, v in module.head.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    assert set(module.auxiliary) == {"parade_style_head", "parade_style_projection", "parade_style_loss"}
    assert parade.step == trainer.global_step > 0
    assert any(not torch.equal(before[k], v) for k, v in module.head.state_dict().items())
    trainer.test(module, datamodule=datamodule, verbose=False)
    entry = module.reports["test"]["mitigations"]["parade"]
    assert entry["settings"]["strength"] == 0.1 and entry["settings"]["encoder_objective"] == "covariance"
    measured = entry["measured"]["style"]
    assert 0.0 <= measured["decorrelation"] <= 1.0 and measured["n"] == len(datamodule.views["test"])
    assert measured["linear_cka"] is None or 0.0 <= measured["linear_cka"] <= 1.0 + 1e-6


def test_a_module_without_the_protocol_is_told_what_is_missing(tiny_overrides, tmp_path):
    datamodule = fairdml.DMLDataModule(compose_config(tiny_overrides).data, seed=0)

    class Plain(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(2, 2)

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            return self.layer.weight.sum()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(max_epochs=1, callbacks=[fairdml.Parade()], logger=False, default_root_dir=tmp_path)
    with pytest.raises(TypeError, match="Parade needs a LightningModule that meets fairdml's MitigationHost"):
        trainer.fit(Plain(), datamodule=datamodule)


def test_a_test_step_without_the_embeddings_is_named(tiny_overrides, tmp_path):
    datamodule = fairdml.DMLDataModule(compose_config(tiny_overrides).data, seed=0)

    class NoOutputs(MyEmbedder):
        def test_step(self, batch: dict, batch_idx: int) -> None:
            self.embed(batch["image"])

    parade = fairdml.Parade(projection_hidden=8, attribute_embedding_dim=4, measure_steps=5)
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=1, callbacks=[parade], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, limit_val_batches=0, use_distributed_sampler=False, default_root_dir=tmp_path,
    )  # fmt: skip
    module = NoOutputs()
    trainer.fit(module, datamodule=datamodule)
    with pytest.raises(TypeError, match=r"NoOutputs.test_step must return a dict with 'features' and 'embeddings'"):
        trainer.test(module, datamodule=datamodule, verbose=False)


class _NoTerms(MyEmbedder):
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.loss(self.embed(batch["image"])[1], batch["label"])  # the registered terms are never called


class _NotInOptimizer(MyEmbedder):
    def configure_optimizers(self) -> torch.optim.Optimizer:  # the heads PARADE registered are left out
        return torch.optim.Adam([*self.backbone.parameters(), *self.head.parameters()], lr=1e-3)


class _NotAdded(MyEmbedder):
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        features, embeddings = self.embed(batch["image"])
        step = {"features": features, "embeddings": embeddings, "batch": batch}
        for term in self.loss_terms:
            term(self, step)  # computed, then dropped
        return self.loss(embeddings, batch["label"])


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (_NoTerms, "_NoTerms.training_step never called the loss term registered with add_loss_term"),
        (_NotInOptimizer, "the parameters of auxiliary['parade_style_head'] are in no optimiser"),
        (_NotAdded, "auxiliary['parade_style_head'] got no gradient: the loss term's values are computed but not"),
    ],
)
def test_a_mitigation_that_is_not_wired_in_fails_at_the_first_step(tiny_overrides, tmp_path, module, message):
    """Once: PARADE in such a module trained as if absent, and the report still showed a PARADE entry."""
    from fairdml.utils.errors import MitigationNotWiredError

    datamodule = fairdml.DMLDataModule(compose_config(tiny_overrides).data, seed=0)
    parade = fairdml.Parade(projection_hidden=8, attribute_embedding_dim=4, encoder_objective="covariance")
    trainer = L.Trainer(
        max_epochs=1, callbacks=[parade], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        limit_val_batches=0, use_distributed_sampler=False, default_root_dir=tmp_path,
    )  # fmt: skip
    with pytest.raises(MitigationNotWiredError, match=re.escape(message)):
        trainer.fit(module(), datamodule=datamodule)
    assert trainer.global_step == 0  # stopped before the first optimiser step


class _Faces(torch.utils.data.Dataset):
    """A plain torch Dataset: no fairdml data class. 12 classes × 8 images, a binary attribute per class."""

    def __init__(self, classes: int = 12, per_class: int = 8):
        generator = torch.Generator().manual_seed(0)
        self.labels = torch.arange(classes).repeat_interleave(per_class)
        centres = torch.randn(classes, 3, 16, 16, generator=generator)
        self.images = centres[self.labels] + 0.3 * torch.randn(len(self.labels), 3, 16, 16, generator=generator)
        self.attribute = (self.labels % 3 == 0).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        attributes = self.attribute[index : index + 1]
        return {"image": self.images[index], "label": self.labels[index], "attributes": attributes, "index": index}


class _UserData(L.LightningDataModule):
    def train_dataloader(self):
        return torch.utils.data.DataLoader(_Faces(), batch_size=32, shuffle=True, drop_last=True)

    def test_dataloader(self):
        return torch.utils.data.DataLoader(_Faces(per_class=4), batch_size=32)


def test_parade_with_a_user_module_and_a_user_datamodule(tmp_path):
    """No fairdml data class anywhere: the batch contract and Parade's own arguments are enough."""
    module = MyEmbedder()
    parade = fairdml.Parade(
        attributes=["skin"], attribute_value_counts=[2], strength=0.1, encoder_objective="covariance",
        projection_hidden=8, attribute_embedding_dim=4, measure_steps=10,
    )  # fmt: skip
    trainer = L.Trainer(
        max_epochs=2, callbacks=[parade], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, datamodule=_UserData())
    assert parade.step == trainer.global_step == 2 * (96 // 32)
    trainer.test(module, datamodule=_UserData(), verbose=False)
    measured = module.reports["test"]["mitigations"]["parade"]["measured"]["skin"]
    assert measured["n"] == 48 and 0.0 <= measured["decorrelation"] <= 1.0


def test_mitigations_say_in_one_line_what_a_user_datamodule_lacks(tmp_path):
    cases = [
        (fairdml.Parade(attributes=["skin"]), TypeError, "give attribute_value_counts"),
        (fairdml.GroupBalancedSampling(), TypeError, "needs a data module with a `group_balanced` switch"),
        (fairdml.ReweightedLoss(), TypeError, "reweighted weights by the training split's group counts"),
        (fairdml.WorstGroupLoss(), TypeError, "worst_group weights by the training split's group counts"),
    ]
    for callback, error, message in cases:
        trainer = L.Trainer(max_epochs=1, callbacks=[callback], logger=False, default_root_dir=tmp_path)
        with pytest.raises(error, match=re.escape(message)):
            trainer.fit(MyEmbedder(), datamodule=_UserData())


class _NoFairdmlCode(L.LightningModule):
    """A user's module with no fairdml code at all: its validation_step returns nothing."""

    def __init__(self):
        super().__init__()
        self.backbone = timm.create_model("test_resnet", pretrained=False, num_classes=0)
        self.head = nn.Linear(self.backbone.num_features, 16)
        self.loss = losses.TripletMarginLoss(margin=0.2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(images)), dim=1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.loss(self(batch["image"]), batch["label"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pass

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self(batch["image"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class _UserDataWithVal(_UserData):
    def val_dataloader(self):
        return torch.utils.data.DataLoader(_Faces(classes=6, per_class=6), batch_size=16)


def test_one_callback_gives_any_module_per_group_figures_a_report_and_a_card(tmp_path):
    from fairdml.metrics.functional.report import fairness_report

    monitor = fairdml.FairnessMonitor(["light", "dark"], attribute="skin", ks=(1, 2), min_group_size=5, leakage=False)
    trainer = L.Trainer(
        max_epochs=2, callbacks=[monitor], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    module = _NoFairdmlCode()
    trainer.fit(module, datamodule=_UserDataWithVal())
    logged = set(trainer.callback_metrics)
    assert {"val_groups/recall_at_1/light", "val_groups/recall_at_1/dark", "val/recall_at_1/gap"} <= logged
    trainer.test(module, datamodule=_UserDataWithVal(), verbose=False)
    out = tmp_path / "fairness"
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 48 and sorted(report["groups"]) == ["dark", "light"] and report["intervals"]
    assert (out / "MODEL_CARD.md").is_file() and (out / "model_card.html").is_file()
    saved = np.load(out / "embeddings_test.npz")
    module.eval()
    with torch.no_grad():
        direct = fairness_report(module(_Faces(per_class=4).images), _Faces(per_class=4).labels,
                                 _Faces(per_class=4).attribute, group_names=["light", "dark"], ks=(1, 2),
                                 leakage=False, min_group_size=5, bootstrap_resamples=0)  # fmt: skip
    assert report["overall"]["recall@1"] == pytest.approx(direct["overall"]["recall@1"], abs=1e-6)
    assert saved["embeddings"].shape == (48, 16)


def test_the_monitor_and_parade_together_report_the_mitigation(tmp_path):
    parade = fairdml.Parade(
        attributes=["skin"], attribute_value_counts=[2], encoder_objective="covariance", projection_hidden=8,
        attribute_embedding_dim=4, measure_steps=5,
    )  # fmt: skip
    monitor = fairdml.FairnessMonitor(["light", "dark"], attribute="skin", ks=(1,), model_card=False, leakage=False)
    trainer = L.Trainer(
        max_epochs=1, callbacks=[monitor, parade], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, default_root_dir=tmp_path,
    )  # fmt: skip
    module = MyEmbedder()
    trainer.fit(module, datamodule=_UserData())
    trainer.test(module, datamodule=_UserData(), verbose=False)
    report = json.loads((tmp_path / "fairness" / "report.json").read_text())
    assert report["mitigations"]["parade"]["measured"]["skin"]["n"] == 48
