"""A decoded uint8 image cache, built once per dataset and size, and the training view that reads it.

Why: decoding a JPEG and augmenting it costs a CPU core about 6.5 ms per 224 px image (docs/benchmarks.md), so
16 cores feed about 2,400 images/s, less than one H100 trains. FFCV's idea, done with numpy alone: decode every
image once into a memory-mapped (N, 3, S, S) uint8 array, each image resized to fit S×S (never enlarged; its
height and width kept beside it). A training item is then a slice of that file plus a crop box and a flip
drawn on the CPU, with torchvision's own `RandomResizedCrop.get_params` on the cached image's size (the same
distribution and the same RNG as the PIL path); the crop, resize, flip and normalisation run on the device in
batches (`fairdml.data.device_augment`, from the data module's `on_after_batch_transfer`).

Only training reads the cache: validation, test, audits and `fairdml evaluate` decode as before, so every
report is the same whether the cache is on or off.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import RandomResizedCrop

from fairdml.data.base import DatasetView, DMLDataset
from fairdml.utils.atomic import atomic_path, write_json

CACHE_VERSION = 1
CACHE_ENV = "FAIRDML_CACHE"  # where caches live; default ~/.cache/fairdml (XDG_CACHE_HOME respected)
CROP_SCALE = (0.7, 1.0)  # fairdml's RandomResizedCrop scale, for both paths (datamodule.build_transforms too)
CROP_RATIO = (3 / 4, 4 / 3)  # torchvision's default aspect ratios


def cache_side(image_size: int) -> int:
    """S: large enough that the smallest crop (scale 0.7 of the area) still has `image_size` pixels a side."""
    return math.ceil(image_size / math.sqrt(CROP_SCALE[0]))


def default_cache_dir(kind: str = "decoded") -> Path:
    """$FAIRDML_CACHE/<kind>, else $XDG_CACHE_HOME/fairdml/<kind> (~/.cache/fairdml/<kind>)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / kind
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return base / "fairdml" / kind


def dataset_fingerprint(dataset: DMLDataset, side: int) -> str:
    """What the cached pixels depend on: the dataset's class, samples and labels, and for image files their
    names, sizes and modification times (a replaced file gives a new cache, never stale pixels)."""
    digest = hashlib.sha256(f"{CACHE_VERSION}|{type(dataset).__qualname__}|{side}|{len(dataset)}".encode())
    digest.update(np.ascontiguousarray(dataset.labels).tobytes())
    digest.update(np.ascontiguousarray(dataset.attributes).tobytes())
    files = getattr(dataset, "image_files", None)
    if files is not None:
        image_root = Path(dataset.image_root)
        digest.update(str(image_root.resolve()).encode())
        for name in files:
            stat = (image_root / os.fsdecode(name)).stat()
            digest.update(bytes(name) + f"|{stat.st_size}|{stat.st_mtime_ns}".encode())
    elif isinstance(getattr(dataset, "images", None), np.ndarray):  # in memory (the embedded digits): all pixels
        digest.update(np.ascontiguousarray(dataset.images).tobytes())
    else:  # another in-memory dataset: its first, middle and last images
        for index in sorted({0, len(dataset) // 2, len(dataset) - 1}):
            digest.update(np.asarray(dataset.load_image(index)).tobytes())
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class DecodedImages:
    """The cache of one dataset: `pixels` (N, 3, S, S) uint8 memory map, `sizes` (N, 2) the (h, w) of each
    image inside its S×S slot (top-left; its last row and column are repeated over the rest)."""

    pixels: np.ndarray
    sizes: np.ndarray

    @classmethod
    def open(cls, folder: Path) -> DecodedImages:
        meta = json.loads((folder / "meta.json").read_text())
        pixels = np.load(folder / "pixels.npy", mmap_mode="r")
        sizes = np.load(folder / "sizes.npy")
        if pixels.shape[0] != meta["n"] or sizes.shape != (meta["n"], 2):
            raise ValueError(f"decoded cache {folder} is inconsistent ({meta}); delete the folder to rebuild it")
        return cls(pixels, sizes)


class _Decode(Dataset):
    def __init__(self, dataset: DMLDataset, side: int):
        self.dataset, self.side = dataset, side

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image = self.dataset.load_image(index)
        width, height = image.size
        scale = min(1.0, self.side / max(width, height))
        if scale < 1.0:  # PIL's bilinear filter widens its support when shrinking: an antialiased resize
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
            image = image.resize((width, height), Image.BILINEAR)
        slot = np.empty((3, self.side, self.side), dtype=np.uint8)
        slot[:, :height, :width] = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
        # The edges repeated into the rest of the slot: a crop on the image's border then interpolates
        # against its edge pixels (as a resize clamps), never against padding.
        slot[:, :height, width:] = slot[:, :height, width - 1 : width]
        slot[:, height:, :] = slot[:, height - 1 : height, :]
        return slot, np.array([height, width], dtype=np.int64)


def build_decoded_cache(
    dataset: DMLDataset, image_size: int, cache_dir: Path | None = None, num_workers: int = 0
) -> Path:
    """The cache folder for `dataset` at `image_size`, decoded now unless it exists (atomic: a killed build
    leaves no half cache). Returns the folder (holding pixels.npy, sizes.npy, meta.json)."""
    side = cache_side(image_size)
    folder = (cache_dir or default_cache_dir()) / dataset_fingerprint(dataset, side)
    if (folder / "meta.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    sizes = np.zeros((n, 2), dtype=np.int64)
    with atomic_path(folder / "pixels.npy") as temporary:
        pixels = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(n, 3, side, side))
        loader = DataLoader(_Decode(dataset, side), batch_size=64, num_workers=num_workers)
        start = 0
        for slots, hw in loader:
            pixels[start : start + len(slots)] = slots.numpy()
            sizes[start : start + len(slots)] = hw.numpy()
            start += len(slots)
        pixels.flush()
        del pixels
    with atomic_path(folder / "sizes.npy") as temporary, open(temporary, "wb") as file:
        np.save(file, sizes)
    write_json(folder / "meta.json", {"n": n, "side": side, "image_size": image_size, "version": CACHE_VERSION})
    return folder


def evaluation_box(height: int, width: int, image_size: int) -> list[float]:
    """The region `Resize(image_size)` + `CenterCrop(image_size)` keep, in the image's own pixels
    (y0, x0, y1, x1), with torchvision's rounding of the resized size and of the crop's offset."""
    short, long = min(height, width), max(height, width)
    resized_long = int(image_size * long / short)
    resized = (image_size, resized_long) if height <= width else (resized_long, image_size)
    scale_y, scale_x = height / resized[0], width / resized[1]  # image pixels per resized pixel
    top = int(round((resized[0] - image_size) / 2.0)) * scale_y
    left = int(round((resized[1] - image_size) / 2.0)) * scale_x
    return [top, left, top + image_size * scale_y, left + image_size * scale_x]


class DecodedView(Dataset):
    """A training `DatasetView` read from the decoded cache: items hold the uint8 slot, a crop box
    (y0, x0, y1, x1) in its pixels and a flip flag; `device_augment.finish_images` makes the image."""

    def __init__(self, view: DatasetView, images: DecodedImages, image_size: int, augment: bool, hflip: bool):
        self.view, self.images, self.image_size, self.augment, self.hflip = view, images, image_size, augment, hflip
        self.labels, self.attributes = view.labels, view.attributes
        self._crop = RandomResizedCrop(1, scale=CROP_SCALE, ratio=CROP_RATIO)

    def __len__(self) -> int:
        return len(self.view)

    def __getitem__(self, index: int) -> dict:
        base_index = int(self.view.indices[index])
        height, width = (int(v) for v in self.images.sizes[base_index])
        if self.augment:  # torchvision's own sampler, on the global torch RNG, as the PIL path's transform
            top, left, crop_h, crop_w = self._crop.get_params(torch.empty(0, height, width), CROP_SCALE, CROP_RATIO)
            box = [top, left, top + crop_h, left + crop_w]
            flip = self.hflip and bool(torch.rand(1) < 0.5)
        else:
            box, flip = evaluation_box(height, width, self.image_size), False
        return {
            "image": torch.from_numpy(np.array(self.images.pixels[base_index])),
            "crop": torch.tensor(box, dtype=torch.float32),
            "flip": torch.tensor(flip),
            "label": int(self.labels[index]),
            "attributes": torch.as_tensor(self.attributes[index], dtype=torch.long),
            "index": index,
        }
