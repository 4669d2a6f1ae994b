"""Structured configs (dataclasses) and their composition from YAML under `configs/` (or a user's copy).

Composition uses Hydra's Compose API (config groups, defaults lists, `key=value` overrides, group choice
such as `experiment=parade`) but not `@hydra.main`: Hydra taking over the process (working directory,
output folders, multirun launcher) clashes with Lightning's DDP launcher (lightning-hydra-template #393).
The dataclasses are the schema: a misspelled key or a wrong type fails at composition, naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from fairdml.utils.config_files import config_dir, yaml_error_line
from fairdml.utils.run_layout import RunPaths


@dataclass
class DataConfig:
    name: str = "digits"  # registry name (fairdml.data.registry)
    root: str | None = None  # folder of an on-disk dataset
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the dataset class
    sensitive_attribute: Any = "style"  # the attribute whose groups the reports compare; a list crosses them
    minority_group: str | None = None  # its value to under-represent; None: the rarest in training
    minority_share: float | None = 0.1  # share of the minority in the training split; None: as is
    imbalance_by: str = "samples"  # remove minority "samples" or whole minority "classes"
    split: dict[str, float] = field(default_factory=lambda: {"train": 0.6, "val": 0.1, "test": 0.3})
    class_split: str = "random"  # random (shuffled, stratified by group) | ordered (label order: CUB's standard)
    image_size: int = 32
    augment: bool = True
    hflip: bool = False
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    batch_size: int = 64
    samples_per_class: int = 4  # m: samples of each class in a training batch
    eval_batch_size: int = 256
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    # Training reads images from a decoded uint8 cache (built once per dataset and size under
    # decoded_cache_dir, default $FAIRDML_CACHE or ~/.cache/fairdml) and crops/flips/normalises them on the
    # device in batches: what lets CPU cores feed a GPU (fairdml/data/decoded_cache.py). Evaluation is unchanged.
    decoded_cache: bool = False
    decoded_cache_dir: str | None = None


@dataclass
class ModelConfig:
    backbone: str = "resnet18"  # any timm model name
    pretrained: bool = False  # true: timm's ImageNet weights via the Hugging Face hub cache (HF_HOME, HF_HUB_OFFLINE)
    pretrained_path: str | None = None  # or a local weights file; with neither, nothing is downloaded
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 128
    compile: bool = False  # torch.compile the backbone and head (parameter names unchanged)


@dataclass
class LossConfig:
    name: str = "margin"  # fairdml.losses registry: margin, triplet, multi_similarity, proxy_anchor, contrastive
    kwargs: dict[str, Any] = field(default_factory=dict)
    miner: str | None = "distance_weighted"  # fairdml.losses miners, or null
    miner_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "adamw"  # a name in fairdml.models.optimizers.OPTIMIZERS (the config check reads it)
    lr: float = 1e-3  # heads and loss parameters
    backbone_lr: float = 1e-3
    loss_lr: float = 1e-2  # learnable loss parameters (margin beta, proxies)
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"  # a name in fairdml.models.optimizers.SCHEDULES ("none": constant rate)
    warmup_epochs: int = 0
    step_size: int = 10  # step scheduler
    gamma: float = 0.1  # step scheduler


@dataclass
class TrainerConfig:
    """fairdml's defaults for Lightning's `Trainer`; `trainer.*` takes any other `Trainer` argument too
    (checked against `Trainer`'s signature by `trainer_problems` when the config is composed)."""

    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    max_epochs: int = 60  # configs/trainer/cpu.yaml: the embedded data's converged recipe
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    gradient_clip_val: float | None = None
    deterministic: bool = False
    enable_progress_bar: bool = True


@dataclass
class WandbConfig:
    enabled: bool = True
    # None: W&B's own environment ($WANDB_MODE, $WANDB_PROJECT, $WANDB_ENTITY, $WANDB_TAGS), else offline /
    # fairdml / none / none (loggers.resolve_wandb_config); config.yaml records what was used
    mode: str | None = None  # offline | online | disabled
    project: str | None = None
    entity: str | None = None
    tags: list[str] | None = None
    log_model: bool = False  # best checkpoint (end of fit) and exported model.pt as W&B artifacts
    init_timeout: float = 30.0  # seconds an online start may take before falling back to offline
    media: bool = True  # per-group tables at each validation, embedding/threshold figures at the test


@dataclass
class LoggerConfig:
    csv: bool = True
    wandb: WandbConfig = field(default_factory=WandbConfig)
    # any other Lightning logger: name -> {_target_: its class, **its arguments}; save_dir defaults to the run
    # folder (configs/logger/tensorboard.yaml; docs/tracking.md)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckpointConfig:
    monitor: str = "val/recall_at_1"  # any logged key, e.g. val/recall_at_1/worst or val/recall_at_1/gap
    mode: str = "max"
    save_last: bool = True
    save_top_k: int = 1


@dataclass
class EvaluationConfig:
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    leakage: bool = True  # fresh linear probe of the sensitive attribute (test report)
    val_leakage: bool = False  # also at each validation (costs a probe fit per epoch)
    test_after_fit: bool = True
    downstream: bool = False  # classifier on frozen test embeddings, unbalanced vs re-balanced (fairdml.evaluate)
    downstream_label: str | None = None  # None: the class; else a dataset attribute, e.g. Smiling
    downstream_test_share: float = 0.5  # held-out share of the downstream data
    model_card: bool = True  # MODEL_CARD.md + model_card.html in the run folder after the test
    card_inputs: str | None = None  # YAML of the card's person-only fields (configs/card/card_inputs.yaml)
    min_group_size: int = 30  # groups smaller than this are flagged in reports, never silently the worst
    bootstrap_resamples: int = 1000  # class-level bootstrap of the test report's intervals (groups, gaps); 0: none


@dataclass
class TrainConfig:
    experiment: str = "default"
    seed: int = 0
    output_dir: str = "outputs"
    run_dir: str | None = None  # set to reuse a folder (resume); default outputs/<experiment>/<time>
    resume: str | None = None  # "last" (of run_dir) or a checkpoint path
    overwrite: bool = False  # true: clear an existing run_dir first (without it, an existing run is refused)
    init_from: str | None = None  # a new run starting from another run's weights (a .ckpt or model.pt)
    nan_policy: str = "error"  # error | skip
    nonfinite_check_every: int = 50  # steps between host reads of the device-side non-finite flag
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Lightning's Trainer arguments: TrainerConfig's (typed), and any other `Trainer` argument by name
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    # Lightning callbacks by name, each `{_target_: class, **its arguments}` (configs/callbacks/): the
    # mitigations (parade, group_balanced) and any other callback; the class's signature is the schema.
    callbacks: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(name="train_schema", node=TrainConfig)


OPEN_GROUPS = ("callbacks.", "trainer.")  # keys checked against a class's signature, not the schema
HYDRA_USED = ("hydra.searchpath",)  # the one hydra.* setting composition uses (docs/extending.md)

# Keys of earlier versions and where they went (a config or command written for one is told how to move).
MOVED_KEYS = {
    "parade": "PARADE is a callback now: `callbacks=parade` (the paper's settings) or `experiment=parade`, "
    "and its keys are `callbacks.parade.<key>`",
    "data.sampler": "group-balanced sampling is a mitigation callback now: `callbacks=group_balanced` "
    "(or `experiment=group_balanced`)",
}


def _valid_keys_hint(message: str) -> str:
    """Name the valid keys (and the closest match) when an override names a key that does not exist."""
    for old, new in MOVED_KEYS.items():
        if f"override '{old}'" in message or f"override '{old}." in message:
            return f"\n'{old}' has moved: {new}."
    for token in message.replace("'", " ").split():
        if "." not in token or "=" in token:
            continue
        parent, _, leaf = token.rpartition(".")
        if not parent:
            continue
        node: Any = OmegaConf.structured(TrainConfig)
        try:
            node = OmegaConf.select(node, parent, throw_on_missing=False)
        except OmegaConfBaseException:
            continue
        if isinstance(node, DictConfig) and leaf not in node:
            keys = list(node.keys())
            if not keys:  # a free-form dict (a class's keyword arguments): its keys are added, not chosen
                return (
                    f"\n'{parent}' holds keyword arguments passed to a class; one it does not set yet is added with "
                    f"'+{token}=VALUE' (the class then checks the name)."
                )
            close = difflib.get_close_matches(leaf, keys, n=1)
            hint = f" Did you mean '{parent}.{close[0]}'?" if close else ""
            return f"\nValid keys under '{parent}': {keys}.{hint}"
    return ""


# `Trainer` arguments fairdml sets itself, and what to use instead.
TRAINER_SET_BY_FAIRDML = {
    "callbacks": "the callbacks config group (callbacks=[...] or callbacks.<name>._target_=...)",
    "logger": "the logger group (logger.csv, logger.wandb.*, logger.extra.<name>._target_=<a Lightning logger>)",
    "default_root_dir": "run_dir= (or output_dir=)",
    "plugins": "nothing: fairdml writes checkpoints atomically through its own plugin",
    "use_distributed_sampler": "nothing: fairdml's class-balanced sampler is rank-aware itself",
    "enable_checkpointing": "checkpoint.* (the selected checkpoint is what the report and export use)",
}


def trainer_problems(trainer: dict) -> list[str]:
    """Every `trainer.*` key must be an argument of Lightning's `Trainer` that fairdml leaves to the user."""
    import inspect

    from lightning import Trainer  # only when the config names a Trainer argument beyond TrainerConfig's

    arguments = [name for name in inspect.signature(Trainer.__init__).parameters if name != "self"]
    problems = []
    for key in trainer:
        if key in TRAINER_SET_BY_FAIRDML:
            instead = TRAINER_SET_BY_FAIRDML[key]
            problems.append(f"trainer.{key}: fairdml sets this Trainer argument itself; use {instead}")
        elif key not in arguments:
            close = difflib.get_close_matches(key, arguments, n=1)
            hint = f" Did you mean 'trainer.{close[0]}'?" if close else ""
            problems.append(f"trainer.{key}: not an argument of Lightning's Trainer.{hint}")
    return problems


def compose_config(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """Compose `<config_dir()>/<config_name>.yaml` with command-line style overrides into a validated config.

    Args:
        overrides: `key=value` and `group=option` strings, as on the `fairdml train` command line.
        config_name: the top config file (default `train`).

    Returns:
        The composed config, in struct mode (a key that does not exist raises).

    Raises:
        ValueError: one message naming a wrong key with the valid ones (and the closest), or a moved key.

    Example:
        >>> cfg = compose_config(["experiment=parade", "callbacks.parade.strength=0.1", "trainer.max_epochs=3"])
        >>> cfg.callbacks.parade.strength, cfg.trainer.max_epochs, cfg.data.name
        (0.1, 3, 'digits')
        >>> compose_config(["model.backbon=resnet18"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: bad configuration: ...Did you mean 'model.backbone'?
    """
    # Inside `callbacks.<name>` the callback's signature is the schema (checked when it is built, naming the
    # valid keys), and inside `trainer.` Lightning's `Trainer` signature is (`trainer_problems`), so Hydra's
    # struct check is lifted there: any argument can be set without `+`.
    overrides = [f"++{item}" if item.startswith(OPEN_GROUPS) else item for item in overrides or []]
    keys = [item.lstrip("+~") for item in overrides]
    ignored = [key for key in keys if key.startswith("hydra.") and not key.startswith(HYDRA_USED)]
    if ignored:  # Hydra's run-time settings would be accepted and silently do nothing
        raise ValueError(
            f"bad configuration: {ignored[0]}: fairdml composes with Hydra but does not run it (only "
            f"{', '.join(HYDRA_USED)} acts); the run folder is set with run_dir=PATH (or output_dir=), a sweep's "
            f"with --sweep-dir"
        )
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides)
    except (ConfigCompositionException, ConfigKeyError, OmegaConfBaseException) as error:
        message = str(error)
        if error.__cause__ is not None:
            message += f"\n{error.__cause__}"
        raise ValueError(f"bad configuration: {message}{_valid_keys_hint(message)}") from None
    except yaml.YAMLError as error:  # a hand-edited config file (--config-dir)
        raise ValueError(f"bad configuration: {yaml_error_line(error)}") from None
    OmegaConf.set_struct(cfg, True)
    extra = [key for key in cfg.trainer if key not in {f.name for f in dataclasses.fields(TrainerConfig)}]
    if extra:  # any other Trainer argument: checked against Lightning's signature (imported only then)
        problems = trainer_problems({key: cfg.trainer[key] for key in extra})
        if problems:
            raise ValueError(f"bad configuration: {'; '.join(problems)}")
    return cfg


def to_container(cfg: DictConfig) -> dict:
    """A plain dict (for checkpoints: OmegaConf objects break `torch.load(weights_only=True)`)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's resolved config.yaml, validated by the schema, with `key=value` overrides applied (what
    `fairdml evaluate RUN` and `fairdml audit --model RUN` read)."""
    path = RunPaths(run_dir).config
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a fairdml run folder: no config.yaml (see `fairdml train`)")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(path))
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise ValueError(f"bad override or config.yaml in {run_dir}: {error}") from None
