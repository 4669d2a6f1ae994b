"""`fairdml audit --model M [key=value ...]`: embed a dataset split with a model, then audit it as an .npz.

M is a fairdml run folder or exported `model.pt`, `timm:NAME` (a timm backbone's features as the embedding)
or `module:function` (a factory returning an `nn.Module` from images to embeddings). The data come from the
same config composition as training, with evaluation transforms; the embeddings go through the one loop of
`fairdml.models.inference` and are saved as `embeddings_<split>.npz`, which the `.npz` audit then reports on, so both
forms of `fairdml audit` write the same files.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from torch import nn

from fairdml.reports.audit import audit_into, check_audit_options, prepare_audit_dir  # audit first: import order
from fairdml.reports.embeddings_file import save_embeddings_npz
from fairdml.utils.run_folder import staged_outputs
from fairdml.utils.run_layout import RunPaths

MODEL_FORMS = "a run folder, a model.pt, timm:NAME or module:function"
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def load_audit_model(spec: str, cfg: DictConfig) -> tuple[nn.Module, dict]:
    """The model `spec` names and how `report["meta"]["model"]` describes it.

    Raises:
        ValueError: an unknown form, a factory that does not import or returns no `nn.Module`, a `timm:`
            backbone without pretrained weights (random features would make the audit meaningless).
        FileNotFoundError: a run folder without model.pt, a missing file.
    """
    if spec.startswith("timm:"):
        return _timm_model(spec.removeprefix("timm:"), cfg)
    path = Path(spec).expanduser()
    if path.is_dir():
        model_path = RunPaths(path).model
        if not model_path.is_file():
            raise FileNotFoundError(
                f"--model {spec}: the folder has no {model_path.name}; export one with `fairdml export {spec}`"
            )
        return _exported_model(model_path), {"kind": "run", "run_dir": str(path), "path": str(model_path)}
    if path.suffix in (".pt", ".pth") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"--model {spec}: no such model file")
        return _exported_model(path), {"kind": "exported", "path": str(path)}
    if _FACTORY.match(spec):
        return _factory_model(spec), {"kind": "factory", "factory": spec}
    raise ValueError(f"--model {spec!r} is not {MODEL_FORMS} (no such file or folder)")


def _exported_model(path: Path) -> nn.Module:
    from fairdml.models.embedding import load_embedding_model

    try:
        return load_embedding_model(path)
    except (KeyError, RuntimeError, pickle.UnpicklingError, EOFError) as error:
        raise ValueError(
            f"--model {path} is not a model.pt written by fairdml (`fairdml export`): {error}".splitlines()[0]
        ) from error


def _timm_model(name: str, cfg: DictConfig) -> tuple[nn.Module, dict]:
    from fairdml.models.backbones import create_backbone

    pretrained, pretrained_path = bool(cfg.model.pretrained), cfg.model.pretrained_path
    if not pretrained and pretrained_path is None:
        raise ValueError(
            f"--model timm:{name} has random weights unless model.pretrained=true (timm's hub cache) or "
            f"model.pretrained_path=FILE is given; an audit of random features says nothing about a model"
        )
    model = create_backbone(name, pretrained_path, pretrained)
    weights = "timm pretrained (hub cache)" if pretrained else str(pretrained_path)
    return model, {"kind": "timm", "backbone": name, "weights": weights}


def _factory_model(spec: str) -> nn.Module:
    module_name, function_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"--model {spec}: cannot import {module_name!r} ({error})") from error
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise ValueError(f"--model {spec}: module {module_name!r} has no function {function_name!r}")
    try:
        model = factory()
    except Exception as error:  # the user's code: any failure is named with the model that raised it
        raise ValueError(f"--model {spec}: {function_name}() raised {type(error).__name__}: {error}") from error
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {spec}: the factory returned {type(model).__name__}, not a torch nn.Module")
    return model


def audit_config(model: str, overrides: Sequence[str]) -> tuple[DictConfig, str]:
    """The config to embed with, and where it came from.

    A run folder is audited on the run's own data, split and seed (its config.yaml, with `key=value` overrides
    applied), so `fairdml audit --model RUN` needs no overrides. An override that chooses from a config group
    (`data=celeba`, `model=tiny`) composes a fresh config from the config folder instead, as the other model
    forms always do: a group choice only means something to composition.
    """
    from fairdml.config import compose_config, load_run_config
    from fairdml.utils.config_files import config_dir

    path = Path(model).expanduser()
    groups = {folder.name for folder in config_dir().iterdir() if folder.is_dir()}
    chooses_group = any(o.split("=", 1)[0].lstrip("+~") in groups for o in overrides)
    if path.is_dir() and RunPaths(path).config.is_file() and not chooses_group:
        return load_run_config(path, overrides), f"{RunPaths(path).config} + overrides"
    return compose_config(list(overrides)), "composed from configs/ + overrides"


def split_view(cfg: DictConfig, split: str):
    """The split's DatasetView with evaluation transforms (also for train); `all`: every sample of the data."""
    from fairdml.data.base import DatasetView
    from fairdml.data.datamodule import DMLDataModule, build_transforms

    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    datamodule.setup()
    if split != "all" and split not in datamodule.views:
        raise ValueError(f"--split {split}: the data has no such split; it has {[*datamodule.views, 'all']}")
    base = datamodule.views["train"].base
    indices = np.arange(len(base)) if split == "all" else datamodule.views[split].indices
    view = DatasetView(base, indices, build_transforms(cfg.data, train=False))
    return view, datamodule.group_attribute, datamodule.group_names


def run_model_audit(
    model: str,
    out_dir: str | os.PathLike,
    overrides: Sequence[str] = (),
    split: str = "test",
    progress: bool = True,
    device: str | None = None,
    **options: Any,
) -> dict:
    """Embed `split` of the data `overrides` compose with `model`, save the .npz in `out_dir`, audit it.

    `options` are `run_audit`'s keywords (ks, seed, model_card, card_inputs, kmeans_backend, min_group_size).

    Writes what `run_audit` writes (report.json, report.csv, the card) plus `embeddings_<split>.npz`;
    `report["meta"]` names the model, the data and the split. Options and inputs are checked before embedding.
    `device` None: `cuda` (with bf16 autocast) when there is one, else `cpu` (float32 throughout).
    """
    from fairdml.models.inference import embed_dataset, resolve_device

    overwrite = options.pop("overwrite", False)
    report_options = {k: v for k, v in options.items() if k not in ("model_card", "card_inputs")}
    out, settings = check_audit_options(
        out_dir, options.get("model_card", True), options.get("card_inputs"), **report_options,
        timings=True, knn_backend="auto",
    )  # fmt: skip
    prepare_audit_dir(out, overwrite)  # refused now, not after embedding; the old audit stays until the new is whole
    target = resolve_device(device)
    cfg, config_source = audit_config(model, overrides)
    network, model_meta = load_audit_model(model, cfg)
    view, group_attribute, group_names = split_view(cfg, split)
    embeddings = embed_dataset(
        network, view, cfg.data.eval_batch_size, device=target, progress=progress, num_workers=cfg.data.num_workers
    )
    groups = np.asarray(group_names, dtype=str)[view.attribute_column(group_attribute)]
    meta = _audit_meta(overrides, cfg, split, model_meta, config_source, target)
    model_card, card_inputs = options.get("model_card", True), options.get("card_inputs")
    with staged_outputs(out, replace_all=True) as staging:
        name = f"embeddings_{split}.npz"
        npz_path = save_embeddings_npz(staging / name, embeddings, view.labels, groups, group_attribute)
        return audit_into(str(npz_path), staging, settings, model_card, card_inputs, meta, source=str(out / name))


def _audit_meta(
    overrides: Sequence[str], cfg: DictConfig, split: str, model_meta: dict, config_source: str, target
) -> dict:  # fmt: skip
    """What `report["meta"]` says of a model audit: the model, the data, the split, where the config came from."""
    data_meta = {"name": cfg.data.name, "root": cfg.data.root, "split": split, "seed": cfg.seed}
    precision = "bf16 autocast" if target.type == "cuda" else "float32"
    meta = {"model": model_meta, "data": data_meta, "split": split, "overrides": list(overrides)}
    meta["config"] = config_source
    meta["embedding"] = {"device": str(target), "precision": precision}
    return meta
