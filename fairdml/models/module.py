"""The LightningModule: an EmbeddingModel trained with a pytorch-metric-learning loss, evaluated by finDML.

Callbacks extend training through two public methods instead of touching internals: `add_auxiliary`
(extra trainable modules with their own learning rate, e.g. PARADE's attribute head) and `add_loss_term`
(a function of the step's features/embeddings/batch that returns named loss terms). Together with
`feature_dim`, `embedding_dim` and `reports` they are the `MitigationHost` protocol
(fairdml.callbacks.mitigation), which a user's own LightningModule can meet instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics.utilities import dim_zero_cat

from fairdml.losses import create_loss, create_miner
from fairdml.metrics.fairness import EmbeddingFairness, drop_duplicate_indices, flatten_report
from fairdml.metrics.settings import ReportSettings
from fairdml.models.backbones import feature_dim
from fairdml.models.embedding import EmbeddingModel

if TYPE_CHECKING:
    from fairdml.data.datamodule import DMLDataModule

LossTerm = Callable[[Any, dict], dict[str, torch.Tensor]]  # (host module, step) -> named loss terms


class DMLModule(L.LightningModule):
    def __init__(self, config: dict, num_classes: int, group_names: list[str], group_attribute: str):
        """`config` is the plain-dict TrainConfig (plain so checkpoints load with weights_only=True)."""
        super().__init__()
        self.save_hyperparameters()
        model_cfg, loss_cfg = config["model"], config["loss"]
        self.model = EmbeddingModel(
            model_cfg["backbone"], model_cfg["embedding_dim"], model_cfg["pretrained_path"],
            pretrained=model_cfg.get("pretrained", False), **model_cfg["backbone_kwargs"],
        )  # fmt: skip
        self.loss = create_loss(loss_cfg["name"], num_classes, model_cfg["embedding_dim"], **loss_cfg["kwargs"])
        self.miner = create_miner(loss_cfg["miner"], **loss_cfg["miner_kwargs"])
        self.auxiliary = nn.ModuleDict()
        self._auxiliary_lr: dict[str, float] = {}
        self._loss_terms: list[LossTerm] = []
        self.group_attribute = group_attribute
        self.skipped_nonfinite = 0
        eval_cfg, seed = config["evaluation"], config["seed"]
        self.val_fairness = EmbeddingFairness(group_names, ReportSettings.from_config(eval_cfg, seed, "val"))
        self.test_fairness = EmbeddingFairness(group_names, ReportSettings.from_config(eval_cfg, seed, "test"))
        self.reports: dict[str, dict] = {}

    @classmethod
    def from_config(cls, cfg: DictConfig | dict, datamodule: DMLDataModule) -> DMLModule:
        """The module a training config describes, for the data module's classes and groups (set up here).

        Example:
            >>> from fairdml.config import compose_config
            >>> from fairdml.data import DMLDataModule
            >>> cfg = compose_config(["model=tiny"])
            >>> datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
            >>> module = DMLModule.from_config(cfg, datamodule)
            >>> module.embedding_dim, datamodule.group_names
            (64, ['majority', 'minority'])
        """
        config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        datamodule.setup()
        num_classes = int(datamodule.views["train"].base.labels.max()) + 1
        return cls(config, num_classes, datamodule.group_names, datamodule.group_attribute)

    # -- extension points for callbacks --------------------------------------------------------------
    def add_auxiliary(self, name: str, module: nn.Module, lr: float | None = None, loss: bool = False) -> None:
        """Register a trainable module (call in a callback's `setup`, before optimisers and DDP exist); `lr`
        None trains it at `optim.lr`, or at `optim.loss_lr` for loss parameters (`loss=True`)."""
        self.auxiliary[name] = module
        optim_cfg = self.config["optim"]
        self._auxiliary_lr[name] = lr if lr is not None else optim_cfg["loss_lr" if loss else "lr"]

    def add_loss_term(self, term: LossTerm) -> None:
        self._loss_terms.append(term)

    @property
    def feature_dim(self) -> int:
        return feature_dim(self.model.backbone)

    @property
    def embedding_dim(self) -> int:
        return int(self.config["model"]["embedding_dim"])

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's features of `images` (what the class head and mitigations' heads read)."""
        return self.model.features(images)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["fairdml_skipped_nonfinite"] = self.skipped_nonfinite

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.skipped_nonfinite = int(checkpoint.get("fairdml_skipped_nonfinite", 0))

    @property
    def config(self) -> dict:
        return self.hparams["config"]

    # -- forward and training ------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def group_codes(self, batch: dict) -> torch.Tensor:
        attribute_names = self.trainer.datamodule.views["train"].attribute_names
        return batch["attributes"][:, attribute_names.index(self.group_attribute)]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        features = self.model.features(batch["image"])
        embeddings = self.model.head(features)
        labels = batch["label"]
        pairs = self.miner(embeddings, labels) if self.miner is not None else None
        terms = {"class": self.loss(embeddings, labels, pairs)}
        step = {"features": features, "embeddings": embeddings, "batch": batch}
        for term in self._loss_terms:
            terms.update(term(self, step))
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            return self._nonfinite(loss, terms, batch_idx)
        batch_size = len(labels)
        for name, value in terms.items():
            self.log(f"train/loss_{name}", value.detach(), batch_size=batch_size)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch_size)
        return loss

    def _nonfinite(self, loss: torch.Tensor, terms: dict, batch_idx: int) -> None:
        where = (
            f"non-finite loss {loss.item()} at epoch {self.current_epoch}, global step {self.global_step}, "
            f"batch {batch_idx}; terms: { {k: float(v) for k, v in terms.items()} }"
        )
        if self.config["nan_policy"] != "skip":
            raise FloatingPointError(f"{where}. Set nan_policy=skip to skip such batches (they are counted).")
        self.skipped_nonfinite += 1
        self.log("train/skipped_nonfinite", float(self.skipped_nonfinite))
        return None

    # -- evaluation ----------------------------------------------------------------------------------
    def _eval_step(self, metric: EmbeddingFairness, batch: dict) -> dict[str, torch.Tensor]:
        """Update the metric; return features and embeddings for callbacks (PARADE reads its heads' inputs)."""
        features = self.model.features(batch["image"])
        embeddings = self.model.head(features)
        metric.update(embeddings.float(), batch["label"], self.group_codes(batch), batch["index"])
        return {"features": features, "embeddings": embeddings}

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._eval_step(self.val_fairness, batch)

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._eval_step(self.test_fairness, batch)

    def _eval_epoch_end(self, split: str, metric: EmbeddingFairness) -> None:
        report = metric.compute()
        self.reports[split] = report
        # compute() returns the same synced report on every rank, so no sync_dist is needed.
        # Keys: {split}/{metric}, /group=<name>, /gap, /ratio, /worst (see flatten_report).
        self.log_dict(flatten_report(report, split), rank_zero_only=False)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val", self.val_fairness)

    def on_test_epoch_end(self) -> None:
        self.test_embeddings = gathered_embeddings(self.test_fairness)
        self._eval_epoch_end("test", self.test_fairness)

    # -- optimisation --------------------------------------------------------------------------------
    def configure_optimizers(self):
        optim_cfg = self.config["optim"]
        groups = [
            {"params": self.model.backbone.parameters(), "lr": optim_cfg["backbone_lr"], "name": "backbone"},
            {"params": self.model.head.parameters(), "lr": optim_cfg["lr"], "name": "head"},
        ]
        loss_params = list(self.loss.parameters())
        if loss_params:
            groups.append({"params": loss_params, "lr": optim_cfg["loss_lr"], "name": "loss"})
        for name, module in self.auxiliary.items():
            groups.append({"params": module.parameters(), "lr": self._auxiliary_lr[name], "name": name})
        optimizer = _create_optimizer(optim_cfg, groups)
        if optim_cfg["scheduler"] == "none":
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        steps_per_epoch = max(total // max(self.trainer.max_epochs or 1, 1), 1)
        warmup = optim_cfg["warmup_epochs"] * steps_per_epoch
        factor = _schedule(optim_cfg, total, warmup, steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _create_optimizer(optim_cfg: dict, groups: list[dict]) -> torch.optim.Optimizer:
    name, decay = optim_cfg["name"], optim_cfg["weight_decay"]
    if name == "adamw":
        return torch.optim.AdamW(groups, weight_decay=decay)
    if name == "adam":
        return torch.optim.Adam(groups, weight_decay=decay)
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=optim_cfg["momentum"], weight_decay=decay)
    raise ValueError(f"unknown optim.name {name!r}; valid: adamw, adam, sgd")


def _schedule(optim_cfg: dict, total: int, warmup: int, steps_per_epoch: int) -> Callable[[int], float]:
    kind = optim_cfg["scheduler"]
    if kind not in ("cosine", "step"):
        raise ValueError(f"unknown optim.scheduler {kind!r}; valid: cosine, step, none")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "cosine":
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return optim_cfg["gamma"] ** ((step // steps_per_epoch) // optim_cfg["step_size"])

    return factor


def gathered_embeddings(metric: EmbeddingFairness) -> dict[str, torch.Tensor]:
    """All processes' evaluation embeddings, labels and group codes, DDP padding duplicates dropped."""
    with metric.sync_context():
        state = {name: dim_zero_cat(getattr(metric, name)).cpu() for name in ("embeddings", "labels", "groups")}
        keep = drop_duplicate_indices(dim_zero_cat(metric.indices).cpu())
    return {name: value[keep] for name, value in state.items()}

