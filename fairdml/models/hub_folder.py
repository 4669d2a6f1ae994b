"""The class-embedding model as a timm-style Hub folder: `model.safetensors` + `config.json`.

Why a second format beside `model.pt`: safetensors loads without unpickling anything (a shared file cannot run
code), and a Hugging Face Hub repo of this shape is what timm users expect to find. `config.json` follows
timm's layout (`architecture`, `num_classes`, `num_features`, `model_args`, `pretrained_cfg` with the input size
and normalisation that `timm.data.resolve_data_config` reads) and adds a `fairdml` section with what timm's
fields cannot say: the embedding head, the source run and a checksum of the weights.

The weights' names are those of `EmbeddingModel.state_dict()` (`backbone.*`, `head.*`): the folder loads back
with `load_hub_folder`, which rebuilds the model from the config and needs no training code.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import safetensors.torch

from fairdml import __version__
from fairdml.models.backbones import feature_dim
from fairdml.models.embedding import EmbeddingModel, save_embedding_model
from fairdml.utils.atomic import atomic_path, read_json, sha256_of

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "fairdml-embedding/1"
# What the evaluation transform does (fairdml.data.datamodule): resize the short side, centre crop, normalise.
EVAL_CROP = {"crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear"}


def preprocessing_of(config: dict[str, Any]) -> dict[str, Any]:
    """image_size, mean and std of a run's composed config (its `data` section), as the model saw its images."""
    data = config.get("data") or {}
    missing = [key for key in ("image_size", "mean", "std") if key not in data]
    if missing:
        raise ValueError(f"the run's config has no data.{missing[0]} (needed in config.json to preprocess images)")
    return {"image_size": int(data["image_size"]), "mean": list(data["mean"]), "std": list(data["std"])}


def hub_config(model: EmbeddingModel, preprocessing: dict[str, Any], source: dict[str, Any] | None = None) -> dict:
    """config.json's content: timm's fields for the backbone, fairdml's for the whole model.

    `preprocessing`: `preprocessing_of(run_config)`. `source`: where the weights come from (checkpoint, selection,
    report pointer), kept as written.
    """
    spec, size = model.spec, preprocessing["image_size"]
    pretrained_cfg = {
        "input_size": [3, size, size],
        "fixed_input_size": bool(getattr(model.backbone, "pretrained_cfg", {}).get("fixed_input_size", False)),
        "mean": preprocessing["mean"],
        "std": preprocessing["std"],
        **EVAL_CROP,
        "num_classes": 0,
    }
    config: dict[str, Any] = {"architecture": spec["backbone"], "num_classes": 0}
    config["num_features"] = feature_dim(model.backbone)
    if spec["backbone_kwargs"]:
        config["model_args"] = dict(spec["backbone_kwargs"])
    config["pretrained_cfg"] = pretrained_cfg
    config["fairdml"] = {
        "format": FORMAT,
        "version": __version__,
        "backbone": spec["backbone"],
        "backbone_kwargs": dict(spec["backbone_kwargs"]),
        "embedding_dim": spec["embedding_dim"],
        "head": "linear projection of the backbone's features, then L2 normalisation",
        "image_size": size,
        "normalization": {"mean": preprocessing["mean"], "std": preprocessing["std"]},
        **(source or {}),
    }
    return config


def save_hub_folder(model: EmbeddingModel, weights_path: Path, config_path: Path, config: dict) -> None:
    """Write the weights (safetensors) and `config` (with the weights' SHA-256 added) to the two paths given.

    The caller picks the paths (temporary ones beside the targets when a set of files must appear together).
    """
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    safetensors.torch.save_file(tensors, weights_path, metadata={"format": "pt"})  # "pt": the Hub's convention
    config = {**config, "fairdml": {**config["fairdml"], "weights_sha256": sha256_of(weights_path)}}
    config_path.write_text(json.dumps(config, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_model_files(
    model: EmbeddingModel,
    targets: dict[str, Path],
    run_config: dict[str, Any],
    source: dict[str, Any],
    extra: dict | None = None,
) -> dict[str, Path]:
    """Write `targets` ("weights" and "config", the Hub pair; "pt" too when given) all, or none of them.

    `run_config`: the run's composed config (its data section gives the preprocessing config.json records);
    `source`: where the weights come from, kept in config.json's fairdml section.
    """
    config = hub_config(model, preprocessing_of(run_config), source)
    with contextlib.ExitStack() as stack:  # every file goes to a temporary name first; renamed in when all are done
        temporary = {key: stack.enter_context(atomic_path(path)) for key, path in targets.items()}
        if "pt" in temporary:
            save_embedding_model(model, temporary["pt"], extra=extra)
        save_hub_folder(model, temporary["weights"], temporary["config"], config)
    return targets


def load_hub_folder(folder: str | Path) -> EmbeddingModel:
    """Rebuild the model of a folder with `model.safetensors` + `config.json` (safetensors and JSON only).

    Raises:
        FileNotFoundError: the folder, or one of its two files, is missing (named).
        ValueError: a file is corrupt, truncated or not from `fairdml export` (named, with what to do).

    Example:
        >>> import tempfile
        >>> from fairdml.models.embedding import EmbeddingModel
        >>> folder = Path(tempfile.mkdtemp())
        >>> model = EmbeddingModel("test_resnet", 16)
        >>> config = hub_config(model, {"image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3})
        >>> save_hub_folder(model, folder / WEIGHTS_FILE, folder / CONFIG_FILE, config)
        >>> load_hub_folder(folder).spec["embedding_dim"]
        16
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no exported model folder at {folder} (one with {WEIGHTS_FILE} and {CONFIG_FILE})")
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; re-create the folder with `fairdml export RUN --out DIR`")
    spec = _fairdml_section(config_path)
    expected = spec.get("weights_sha256")
    if expected is not None and sha256_of(weights_path) != expected:
        raise ValueError(
            f"{weights_path} does not match the SHA-256 in {config_path.name}: the file is corrupt or truncated, or "
            f"comes from another export; download or export it again"
        )
    try:
        state = safetensors.torch.load_file(weights_path)
    except (safetensors.SafetensorError, OSError) as error:
        raise ValueError(f"{weights_path} is not a readable safetensors file ({error}); export it again") from None
    model = EmbeddingModel(spec["backbone"], spec["embedding_dim"], None, **spec.get("backbone_kwargs", {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise ValueError(f"{weights_path} does not fit the model {config_path.name} describes ({first})") from None
    return model.eval()


def _fairdml_section(config_path: Path) -> dict[str, Any]:
    config = read_json(config_path, "config.json")
    spec = config.get("fairdml") if isinstance(config, dict) else None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ValueError(f"{config_path} has no fairdml section of format {FORMAT!r}: not written by `fairdml export`")
    missing = [key for key in ("backbone", "embedding_dim") if key not in spec]
    if missing:
        raise ValueError(f"{config_path}: fairdml.{missing[0]} is missing (needed to rebuild the model)")
    return spec
