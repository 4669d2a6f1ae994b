"""The LightningModule: an EmbeddingModel trained with a pytorch-metric-learning loss, evaluated by finDML.

Callbacks extend training through two public methods instead of touching internals: `add_auxiliary`
(extra trainable modules with their own learning rate, e.g. PARADE's attribute head) and `add_loss_term`
(a function of the step's features/embeddings/batch that returns named loss terms). Together with
`feature_dim`, `embedding_dim` and `reports` they are the `MitigationHost` protocol
(fairdml.mitigations.base), which a user's own LightningModule can meet instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics.utilities import dim_zero_cat

from fairdml.config import to_container
from fairdml.config_keywords import Keywords, keyword_config
from fairdml.losses import create_loss, create_miner
from fairdml.metrics.fairness import EmbeddingFairness, drop_duplicate_indices, flatten_report
from fairdml.metrics.settings import ReportSettings
from fairdml.mitigations.base import LossTerm
from fairdml.models.backbones import feature_dim
from fairdml.models.embedding import EmbeddingModel
from fairdml.models.precision import full_precision, without_autocast

if TYPE_CHECKING:
    from fairdml.data.datamodule import DMLDataModule


class NonfiniteWatch:
    """Non-finite losses noticed on the device and reported at the next read, so a step costs no host sync.

    `observe` keeps a running "any non-finite since the last read" flag, the first bad step's index in the
    window and its loss terms, all as device tensors updated with `torch.where` (no `if` on a tensor);
    the host keeps each step's (epoch, global step, batch) in a list. `check` moves all of it to the host in
    one transfer and raises FloatingPointError naming the first bad step. The module checks every
    `nonfinite_check_every` steps, at the epoch's end, before validation and before a checkpoint is written,
    so no checkpoint of NaN weights is saved silently; up to N − 1 steps may run on NaN weights before.
    """

    def __init__(self, every: int = 50):
        if every < 1:
            raise ValueError(f"nonfinite_check_every={every}: must be >= 1 (steps between reads)")
        self.every = every
        self._positions: list[tuple[int, int, int]] = []  # (epoch, global step, batch) of each observed step
        self._names: list[str] = []
        self._state: torch.Tensor | None = None  # [seen, first bad index, last loss, *first bad loss and terms]

    def observe(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], position: tuple[int, int, int]) -> None:
        values = torch.stack([loss.detach().float().reshape(()), *(_scalar(v, loss) for v in terms.values())])
        names = list(terms)
        if self._state is not None and (names != self._names or self._state.device != values.device):
            self.check()  # the terms changed (rare): report the window so far before starting a new record
        if self._state is None or not self._positions:
            self._state = torch.zeros(3 + len(values), device=values.device)
            self._names = names
        seen, first_index, record = self._state[0], self._state[1], self._state[3:]
        bad = ~torch.isfinite(values[0])
        first = bad & (seen == 0)
        self._state = torch.cat([
            (seen.bool() | bad).float()[None],
            torch.where(first, float(len(self._positions)), first_index)[None],
            values[:1],
            torch.where(first, values, record),
        ])  # fmt: skip
        self._positions.append(position)

    def due(self) -> bool:
        return len(self._positions) >= self.every

    def check(self) -> float | None:
        """Read the window (one host transfer); raise if a step in it was non-finite, else return the last
        loss (None when nothing was observed since the last read)."""
        if self._state is None or not self._positions:
            return None
        seen, first_index, last_loss, loss, *values = self._state.tolist()
        positions, self._positions = self._positions, []
        if seen:
            epoch, global_step, batch_idx = positions[int(first_index)]
            terms = dict(zip(self._names, values, strict=True))
            raise FloatingPointError(
                f"non-finite loss {loss} at epoch {epoch}, global step {global_step}, batch {batch_idx}; "
                f"terms: {terms} (found at the check every nonfinite_check_every={self.every} steps). "
                "Set nan_policy=skip to skip such batches (they are counted)."
            )
        return last_loss


def is_logging_step(module: L.LightningModule) -> bool:
    """Whether Lightning hands this training step's logged values to the loggers (every `log_every_n_steps`
    steps, Lightning's own rule). Step-level values logged on other steps are overwritten unseen, and each
    `self.log` costs about 1–2 ms of Python on the CPU (Lightning moves its result holder to the value's
    device every call), so per-step terms are logged only when they are kept. True outside a Trainer."""
    try:
        trainer = module.trainer
    except RuntimeError:  # not attached (a unit test calling a step by hand)
        return True
    # Lightning's own test (private in 2.x; counts batches, not optimiser steps, so skipped batches agree);
    # without it, every step logs, as before
    connector = getattr(trainer, "_logger_connector", None)
    return connector is None or bool(trainer.fast_dev_run or connector.should_update_logs)


def _scalar(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    value = value.detach().float().reshape(())
    return value if value.device == like.device else value.to(like.device)


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
            merge into the preset's); `optimizer` (a configs/optim preset or adamw/adam/sgd), `lr`,
            `backbone_lr`, `loss_lr`, `weight_decay`, `momentum`, `scheduler`, `warmup_epochs`, `step_size`,
            `gamma` (`optim.*`); `ks`, `leakage`, `val_leakage`, `min_group_size`, `bootstrap_resamples`
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
        self.loss = create_loss(loss_cfg["name"], num_classes, model_cfg["embedding_dim"], **loss_cfg["kwargs"])
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

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        features = self.model.features(batch["image"])  # under autocast in a mixed-precision run
        embeddings = self.model.head(features)
        labels = batch["label"]
        with without_autocast(embeddings.device):  # the loss and the miner in float32 (models/precision.py)
            class_embeddings = full_precision(embeddings)
            try:
                pairs = self.miner(class_embeddings, labels) if self.miner is not None else None
                terms = {"class": self.loss(class_embeddings, labels, pairs)}
            except RuntimeError as error:  # some PML miners fail outright on NaN embeddings (e.g. fp16 overflow)
                if torch.isfinite(class_embeddings).all():  # a host read on this error path only
                    raise
                if self.config["nan_policy"] == "skip":
                    return self._skip_nonfinite()
                cause = (
                    "an activation beyond fp16's range (65504) under 16-mixed: prefer bf16-mixed, or lower the "
                    "learning rate" if str(self.trainer.precision).startswith("16") else self._diverged_hint()
                )
                raise FloatingPointError(
                    f"non-finite embeddings at epoch {self.current_epoch}, global step {self.global_step}, batch "
                    f"{batch_idx}; the miner or loss failed on them ({str(error).splitlines()[0][:80]}). Likely "
                    f"cause: {cause}. Set nan_policy=skip to skip such batches (they are counted)."
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

    def _diverged_hint(self) -> str:
        optim_cfg = self.config["optim"]
        return (
            f"training diverged (optim.lr={optim_cfg['lr']}, optim.backbone_lr={optim_cfg['backbone_lr']}): lower "
            f"the learning rates"
        )

    def _eval_epoch_end(self, split: str, metric: EmbeddingFairness) -> None:
        try:
            report = metric.compute()
        except ValueError as error:  # non-finite embeddings from the model itself: say so, and why
            if "NaN or inf" not in str(error):
                raise
            tensors = [(n, t) for n, t in (*self.named_parameters(), *self.named_buffers()) if t.is_floating_point()]
            name, largest = max(((n, t.detach().abs().max().item()) for n, t in tensors), key=lambda item: item[1])
            raise FloatingPointError(
                f"{split}: the model's embeddings are NaN or inf after epoch {self.current_epoch}, global step "
                f"{self.global_step} (largest weight |{largest:.3g}| in {name}): {self._diverged_hint()}"
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
