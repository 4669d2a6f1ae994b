"""fairdml's own pretrained backbones for the embedded digits, built once and cached.

Why: the paper fine-tunes an ImageNet-pretrained ResNet-50, whose features already cover every group; the gap
then comes from the imbalanced fine-tuning alone. fairdml's embedded digits have no such backbone, and nothing
may be downloaded by default, so fairdml builds the analogue itself: timm's backbone trained on images of ONE
digit scan drawn half in each style (`fairdml.data.digits.single_digit_images`), so it sees both styles equally
and no two-digit class, hence no identity label of the validation or test classes. Two tasks (`TASKS`):
`rotations`, self-supervised (which quarter turn an image was given; Gidaris et al., ICLR 2018): generic
features, as ImageNet's are for faces, the paper's analogue (`experiment=digits_pretrained`); and `digits`, the
digit itself, so close to the two-digit task that fine-tuning leaves almost no gap (docs/datasets.md).

`model.pretrained_path=fairdml:TASK` (or `fairdml:TASK-strokes`, `-mark` for the other minority styles)
resolves to the cached file, building it first when absent (under a minute on 2 cores). The file is
`$FAIRDML_CACHE/pretrained/<task>-<style>-<backbone>-<recipe hash>.safetensors`, beside a JSON with the recipe,
the weights' SHA-256 and the held-out accuracy per style; a changed recipe gets a new file, and a file whose
SHA-256 no longer matches is rebuilt. A lock makes parallel runs (a sweep's jobs, DDP ranks) build it once.

The training loop is written by hand (a fixed recipe, one process, no logging or checkpoints): a Lightning
Trainer would add nothing here but start-up time and nondeterminism to guard against.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from fairdml.data.decoded_cache import default_cache_dir
from fairdml.data.digits import MINORITY_STYLES, single_digit_images
from fairdml.utils.atomic import atomic_path, sha256_of, write_json

log = logging.getLogger("fairdml")

SCHEME = "fairdml:"
RECIPE_VERSION = 1
TASKS = ("digits", "rotations")  # single-digit recognition; the quarter turn of a digit image (self-supervised)


@dataclass(frozen=True)
class DigitsRecipe:
    """Everything the weights depend on; its hash names the cached file."""

    backbone: str = "test_resnet"
    task: str = "digits"
    minority_style: str = "global"
    image_size: int = 32
    images: int = 24000
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    held_out: int = 2000
    version: int = RECIPE_VERSION

    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def is_fairdml_weights(path: str | None) -> bool:
    return isinstance(path, str) and path.startswith(SCHEME)


def recipe_for(path: str, backbone: str) -> DigitsRecipe:
    """`fairdml:digits[-STYLE]` for `backbone` -> its recipe; a ValueError names what is accepted."""
    task, _, style = path[len(SCHEME) :].partition("-")
    style = style or "global"
    if task not in TASKS or style not in MINORITY_STYLES:
        raise ValueError(
            f"model.pretrained_path={path!r}: fairdml's own weights are {SCHEME}TASK or {SCHEME}TASK-STYLE, TASK one "
            f"of {list(TASKS)}, STYLE one of {list(MINORITY_STYLES)} (the data's minority_style; default global)"
        )
    return DigitsRecipe(backbone=backbone, task=task, minority_style=style)


def cached_weights(recipe: DigitsRecipe, cache_dir: Path | None = None) -> Path:
    """The weights file of `recipe`, built first when absent or altered (under a lock, once)."""
    folder = (cache_dir or default_cache_dir("pretrained")).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{recipe.task}-{recipe.minority_style}-{recipe.backbone}-{recipe.key()}"
    weights, card = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    with open(folder / f".{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the file built
        if _intact(weights, card):
            return weights
        if weights.exists():
            log.warning("fairdml: %s does not match the SHA-256 in %s; building it again", weights, card.name)
        log.warning("fairdml: building fairdml's pretrained digits backbone %s (once; cached)", weights.name)
        started = time.perf_counter()
        backbone, accuracy = pretrain_digits(recipe)
        with atomic_path(weights, suffix=".safetensors") as temporary:
            save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(temporary))
        write_json(
            card,
            {
                "recipe": dataclasses.asdict(recipe),
                "sha256": sha256_of(weights),
                "held_out_accuracy": accuracy,
                "build_seconds": round(time.perf_counter() - started, 1),
                "torch": torch.__version__,
                "timm": timm.__version__,
            },
            indent=2,
        )
    return weights


def pretrain_digits(recipe: DigitsRecipe) -> tuple[nn.Module, dict[str, float]]:
    """Train the recipe's backbone + a linear 10-way head on single digits; the backbone and its held-out
    accuracy per style (on fresh scans' images of both styles). The global RNG is left as it was: a run that
    builds the file on its way must train as one that found it cached."""
    with torch.random.fork_rng(devices=[]):
        return _pretrain(recipe)


def _pretrain(recipe: DigitsRecipe) -> tuple[nn.Module, dict[str, float]]:
    torch.manual_seed(recipe.seed)
    backbone = timm.create_model(recipe.backbone, pretrained=False, num_classes=0)
    head = nn.Linear(backbone.num_features, 10)
    model = nn.Sequential(backbone, head)
    images, digits, _ = single_digit_images(recipe.images, recipe.seed, recipe.image_size, recipe.minority_style)
    inputs, targets = _task_inputs(recipe.task, _as_inputs(images), torch.from_numpy(digits), recipe.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = recipe.epochs * (len(inputs) // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=steps)
    order = torch.Generator().manual_seed(recipe.seed)
    model.train()
    for _ in range(recipe.epochs):
        permutation = torch.randperm(len(inputs), generator=order)
        for start in range(0, len(inputs) - recipe.batch_size + 1, recipe.batch_size):
            batch = permutation[start : start + recipe.batch_size]
            loss = nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return backbone.eval(), held_out_accuracy(model, recipe)


@torch.no_grad()
def held_out_accuracy(model: nn.Module, recipe: DigitsRecipe) -> dict[str, float]:
    """Digit accuracy per style on `held_out` images drawn with another seed (the same scans, new layouts)."""
    model.eval()
    images, digits, styles = single_digit_images(
        recipe.held_out, recipe.seed + 1, recipe.image_size, recipe.minority_style
    )
    inputs, targets = _task_inputs(recipe.task, _as_inputs(images), torch.from_numpy(digits), recipe.seed + 1)
    predicted = torch.cat([model(chunk).argmax(1) for chunk in inputs.split(512)]).numpy()
    digits = targets.numpy()
    return {
        name: float(np.mean(predicted[styles == code] == digits[styles == code]))
        for code, name in enumerate(("majority", "minority"))
    }


def _task_inputs(task: str, inputs: torch.Tensor, digits: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The task's inputs and targets: `digits` the digit itself; `rotations` (self-supervised, Gidaris et al.
    2018) each image turned by k quarter turns, k in 0..3 drawn with `seed`, and k the target."""
    if task == "digits":
        return inputs, digits
    turns = torch.randint(0, 4, (len(inputs),), generator=torch.Generator().manual_seed(seed))
    rotated = inputs.contiguous(memory_format=torch.contiguous_format).clone()  # NCHW, as the weights were built
    for k in range(1, 4):
        rotated[turns == k] = torch.rot90(inputs[turns == k], k, dims=(2, 3))
    return rotated, turns


def _as_inputs(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) normalised as the data module does (mean = std = 0.5)."""
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5


def _intact(weights: Path, card: Path) -> bool:
    if not (weights.is_file() and card.is_file()):
        return False
    try:
        return json.loads(card.read_text()).get("sha256") == sha256_of(weights)
    except (OSError, ValueError):
        return False
