"""The LightningModule: an EmbeddingModel trained with a pytorch-metric-learning loss, evaluated by finDML.

Callbacks extend training through public methods instead of touching internals: `add_auxiliary`
(extra trainable modules with their own learning rate, e.g. PARADE's attribute head) and `add_loss_term`
(a function of the step's features/embeddings/batch that returns named loss terms). Together with
`feature_dim`, `embedding_dim` and `reports` they are the `MitigationHost` protocol
(fairdml.mitigations.base), which a user's own LightningModule can meet instead. `weight_loss_terms` (each
class-loss term weighted by its anchor's group) is what the group-weighting mitigations need besides.
The non-finite guards are in `step_guards.py`, the optimiser and schedule tables in `optimizers.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics.utilities import dim_zero_cat

from fairdml.config import to_container
from fairdml.config_keywords import Keywords, keyword_config
from fairdml.losses import GroupWeightedReducer, GroupWeights, create_loss, create_miner, set_group_weights
from fairdml.metrics.fairness import EmbeddingFairness, drop_duplicate_indices, flatten_report
from fairdml.metrics.settings import ReportSettings
from fairdml.models.backbones import feature_dim
from fairdml.models.config_rules import model_problems
from fairdml.models.embedding import EmbeddingModel
from fairdml.models.lightning_probe import is_logging_step
from fairdml.models.optimizers import create_optimizer, schedule_of, with_warmup
from fairdml.models.precision import full_precision, without_autocast
from fairdml.models.step_guards import NonfiniteWatch, nonfinite_embeddings_error, nonfinite_model_error

if TYPE_CHECKING:
    from fairdml.data.datamodule import DMLDataModule

LossTerm = Callable[[Any, dict], dict[str, torch.Tensor]]  # add_loss_term's argument: (module, step) -> named terms


def compile_model(model: EmbeddingModel) -> None:
    """`model.compile=true`: torch.compile the backbone and head in place (`nn.Module.compile`), so the
    parameters keep their names: checkpoints and the exported model have no `_orig_mod.` prefix."""
    model.backbone.compile()
    model.head.compile()


# DMLModule's keyword settings: the model, loss, optimiser and evaluation keys of the training config.
MODULE_KEYWORDS = Keywords(
    owner="DMLModule",
    keys={
        **{name: f"model.{name}" for name in (
            "backbone", "embedding_dim", "pretrained", "pretrained_path", "backbone_kwargs", "compile",
        )},
        "loss": "loss.name", "loss_kwargs": "loss.kwargs", "miner": "loss.miner", "miner_kwargs": "loss.miner_kwargs",
        "optimizer": "optim.name",
        **{name: f"optim.{name}" for name in (
            "lr", "backbone_lr", "loss_lr", "weight_decay", "momentum", "scheduler", "warmup_epochs", "step_size",
            "gamma",
        )},
        **{name: f"evaluation.{name}" for name in (
            "ks", "leakage", "val_leakage", "min_group_size", "bootstrap_resamples",
        )},
        **{name: name for name in ("seed", "nan_policy", "nonfinite_check_every")},
    },
    presets={"loss": "loss", "optimizer": "optim"},
    merged=frozenset({"backbone_kwargs", "loss_kwargs", "miner_kwargs"}),
    resets={"miner": ("loss.miner_kwargs",)},
    checks=(model_problems,),
)  # fmt: skip


def _resolve_config(config: dict | DictConfig | None, settings: dict[str, Any]) -> dict:
    """The whole training config as a plain dict: `config` as given, or the default one with `settings`."""
    if config is not None and settings:
        raise TypeError(
            f"DMLModule takes a whole config or keyword settings, not both (got config and {sorted(settings)}); "
            "to change a config, compose it with the changes (fairdml.compose_config([...]))"
        )
    if config is None:
        return to_container(keyword_config(MODULE_KEYWORDS, settings))
    return to_container(config) if isinstance(config, DictConfig) else config


class DMLModule(L.LightningModule):
    """An `EmbeddingModel` trained with a pytorch-metric-learning loss and evaluated with the finDML report.

    Built from a whole training config (`from_config`, or `config` here), or from keyword settings that
    override the default config (`compose_config([])`, what `fairdml train` starts from). Either way the
    module keeps the full config in its hyperparameters, so its checkpoints load with `load_from_checkpoint`.

    Args:
        config: the plain-dict training config (`fairdml.config.to_container`; plain so that checkpoints load
            with `weights_only=True`); None: the default config with `settings` applied.
        num_classes: classes of the training data (proxy losses and margin's per-class β need them).
        group_names: the name of each group code of the sensitive attribute (the data module's).
        group_attribute: the attribute whose groups the reports compare (the data module's).
        **settings: without `config`: `backbone`, `embedding_dim`, `pretrained`, `pretrained_path`,
            `backbone_kwargs`, `compile` (`model.*`); `loss` (a configs/loss preset, e.g. "triplet" with its
            miner, or any `fairdml.losses` name), `loss_kwargs`, `miner`, `miner_kwargs` (`loss.*`; the kwargs
            merge into the preset's); `optimizer` (a configs/optim preset or any `fairdml.models.optimizers`
            name), `lr`, `backbone_lr`, `loss_lr`, `weight_decay`, `momentum`, `scheduler`, `warmup_epochs`,
            `step_size`, `gamma` (`optim.*`); `ks`, `leakage`, `val_leakage`, `min_group_size`, `bootstrap_resamples`
            (`evaluation.*`); `seed`, `nan_policy`, `nonfinite_check_every`.

    Raises:
        ValueError: one line, for an unknown keyword (naming the closest one) or a value out of range.

    Example:
        >>> import lightning as L
        >>> from fairdml import DMLDataModule
        >>> datamodule = DMLDataModule(options={"num_classes": 20, "samples_per_class": 8}, batch_size=16)
        >>> module = DMLModule(backbone="test_resnet", embedding_dim=32, loss="triplet", lr=3e-4,
        ...                    num_classes=20, group_names=["majority", "minority"], group_attribute="style")
        >>> module.config["loss"]["miner"], module.config["optim"]["lr"], module.embedding_dim
        ('semihard', 0.0003, 32)
        >>> trainer = L.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
        >>> trainer.fit(module, datamodule=datamodule)
        >>> module.reports["val"]["n"] > 0
        True
        >>> DMLModule(embeding_dim=32, num_classes=20, group_names=["a", "b"], group_attribute="style")
        Traceback (most recent call last):
        ...
        ValueError: bad configuration: DMLModule has no keyword 'embeding_dim'. ... Did you mean 'embedding_dim'?
    """

    def __init__(
        self,
        config: dict | DictConfig | None = None,
        num_classes: int | None = None,
        group_names: Sequence[str] | None = None,
        group_attribute: str | None = None,
        **settings: Any,
    ):
        super().__init__()
        config = _resolve_config(config, settings)
        if num_classes is None or group_names is None or group_attribute is None:
            raise TypeError(
                "DMLModule needs num_classes, group_names and group_attribute: the training data's classes and "
                "groups (DMLModule.from_config reads them from a DMLDataModule)"
            )
        # the same four hyperparameters whichever way it was built: load_from_checkpoint passes them back
        self.save_hyperparameters({
            "config": config, "num_classes": num_classes, "group_names": group_names,
            "group_attribute": group_attribute,
        })  # fmt: skip
        model_cfg, loss_cfg = config["model"], config["loss"]
        self.model = EmbeddingModel(
            model_cfg["backbone"], model_cfg["embedding_dim"], model_cfg["pretrained_path"],
            pretrained=model_cfg.get("pretrained", False), **model_cfg["backbone_kwargs"],
        )  # fmt: skip
        if model_cfg.get("compile", False):
            compile_model(self.model)
        self.loss = create_loss(
            loss_cfg["name"], num_classes, model_cfg["embedding_dim"], group_weightable=True, **loss_cfg["kwargs"]
        )
        self.miner = create_miner(loss_cfg["miner"], **loss_cfg["miner_kwargs"])
        self.auxiliary = nn.ModuleDict()
        self._auxiliary_lr: dict[str, float] = {}
        self._loss_terms: list[LossTerm] = []
        self.group_attribute = group_attribute
        self.skipped_nonfinite = 0
        self._nonfinite = NonfiniteWatch(int(config.get("nonfinite_check_every", 50)))
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

    def weight_loss_terms(self, group_weights: GroupWeights | None) -> None:
        """Weight each term of the class loss by its anchor's group from the next step on; None: unweighted again.

        The group-weighting mitigations' extension point: at each training step `group_weights(item_losses,
        item_groups)` gets the step's detached per-term losses (M,) and their anchors' group codes (M,) and
        returns one weight per group (G,). The loss was built with a `GroupWeightedReducer` around its own
        reducer (`create_loss(..., group_weightable=True)`), so the weighted terms are reduced as the loss
        reduces them, and no loss object is replaced: only the reducer's weighting is set (`set_group_weights`).

        Raises:
            ValueError: for a loss whose terms are not per sample, pair or triplet (proxy losses are per class),
                or when another weighting is set.
        """
        set_group_weights(self.loss, group_weights)

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
        self._nonfinite.check()  # a NaN seen since the last read raises here, before weights reach a file
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

    def _class_loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, pairs: tuple | None, batch: dict
    ) -> torch.Tensor:
        """The PML loss of the step; weighted by group (`weight_loss_terms`), it reads the batch's group codes."""
        reducer = self.loss.reducer
        if isinstance(reducer, GroupWeightedReducer) and reducer.group_weights is not None:
            with reducer.for_groups(self.group_codes(batch)):
                return self.loss(embeddings, labels, pairs)
        return self.loss(embeddings, labels, pairs)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        features = self.model.features(batch["image"])  # under autocast in a mixed-precision run
        embeddings = self.model.head(features)
        labels = batch["label"]
        with without_autocast(embeddings.device):  # the loss and the miner in float32 (models/precision.py)
            class_embeddings = full_precision(embeddings)
            try:
                pairs = self.miner(class_embeddings, labels) if self.miner is not None else None
                terms = {"class": self._class_loss(class_embeddings, labels, pairs, batch)}
            except RuntimeError as error:  # some PML miners fail outright on NaN embeddings (e.g. fp16 overflow)
                if torch.isfinite(class_embeddings).all():  # a host read on this error path only
                    raise
                if self.config["nan_policy"] == "skip":
                    return self._skip_nonfinite()
                position = (self.current_epoch, self.global_step, batch_idx)
                raise nonfinite_embeddings_error(
                    error, str(self.trainer.precision), self.config["optim"], position
                ) from error
        step = {"features": features, "embeddings": embeddings, "batch": batch}
        for term in self._loss_terms:
            terms.update({name: full_precision(value) for name, value in term(self, step).items()})
        loss = sum(terms.values())
        # nan_policy=skip keeps the one per-step host read: skipping exactly this batch's optimiser step needs
        # the answer before Lightning runs backward (returning None is how a step is skipped).
        if self.config["nan_policy"] == "skip" and not torch.isfinite(loss):
            return self._skip_nonfinite()
        self._nonfinite.observe(loss, terms, (self.current_epoch, self.global_step, batch_idx))  # no sync
        batch_size, logging = len(labels), is_logging_step(self)
        monitor = self.config.get("checkpoint", {}).get("monitor")
        for name, value in terms.items():
            if logging or monitor == f"train/loss_{name}":  # a monitored term is read at epoch end: keep it fresh
                self.log(f"train/loss_{name}", value.detach(), batch_size=batch_size)
        # every step (checkpoint.monitor and early stopping may read it at any step's end); logger only: the
        # progress bar turns its values into numbers (a host read) at every refresh, so it shows the loss of
        # the periodic read instead (on_train_batch_end)
        self.log("train/loss", loss.detach(), batch_size=batch_size)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._nonfinite.due():
            last_loss = self._nonfinite.check()
            if last_loss is not None:  # a CPU tensor: the progress bar reads it without touching the device
                self.log("loss", torch.tensor(last_loss), prog_bar=True, logger=False, batch_size=1)

    def on_train_epoch_end(self) -> None:
        self._nonfinite.check()

    def on_validation_start(self) -> None:
        self._nonfinite.check()

    def on_train_end(self) -> None:
        self._nonfinite.check()

    def _skip_nonfinite(self) -> None:
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
        try:
            report = metric.compute()
        except ValueError as error:  # non-finite embeddings from the model itself: say so, and why
            if "NaN or inf" not in str(error):
                raise
            raise nonfinite_model_error(
                split, self, self.config["optim"], self.current_epoch, self.global_step
            ) from error
        self.reports[split] = report
        # compute() returns the same synced report on every rank, so no sync_dist is needed.
        # Keys: {split}/{metric}, {split}_groups/{metric}/{group}, .../gap|ratio|worst (see flatten_report).
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
        optimizer = create_optimizer(optim_cfg, groups)
        schedule = schedule_of(optim_cfg)
        if schedule is None:
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        steps_per_epoch = max(total // max(self.trainer.max_epochs or 1, 1), 1)
        warmup = optim_cfg["warmup_epochs"] * steps_per_epoch
        factor = with_warmup(schedule(optim_cfg, total, warmup, steps_per_epoch), warmup)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def gathered_embeddings(metric: EmbeddingFairness) -> dict[str, torch.Tensor]:
    """All processes' evaluation embeddings, labels and group codes, DDP padding duplicates dropped."""
    with metric.sync_context():
        state = {name: dim_zero_cat(getattr(metric, name)).cpu() for name in ("embeddings", "labels", "groups")}
        keep = drop_duplicate_indices(dim_zero_cat(metric.indices).cpu())
    return {name: value[keep] for name, value in state.items()}
