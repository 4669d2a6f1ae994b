"""Safe image loading and the plumbing shared by the on-disk readers (CelebA, LFW, CUB, folder+CSV).

Why one module: every reader must fail the same way (errors that name the file and say where the data
comes from), skip unreadable files the same way (counted, listed, warned about), and store its file
list so that DataLoader workers do not copy it (a Python list of str is touched by refcounting in every
forked worker and gets copied page by page; a numpy bytes array is not).
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from fairdml.data.base import DMLDataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MISSING_ATTRIBUTE_POLICIES = ("drop", "error")
_SHOWN = 5  # how many example file names a warning or error lists


class ImageReadError(OSError):
    """An image file is missing or cannot be decoded; the message names the file."""


class DatasetFileError(FileNotFoundError):
    """A dataset's annotation file or folder is missing; the message says where to get and put it."""


def load_rgb(path: str | Path) -> Image.Image:
    """Open and fully decode an image as RGB, raising ImageReadError that names the file."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # convert() decodes, so truncated files fail here, not later
    except FileNotFoundError as error:
        raise ImageReadError(f"image file not found: {path}") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"cannot decode image {path}: {error}") from error


def unreadable_reason(path: str | Path) -> str | None:
    """Cheap check (existence + header parse + `Image.verify`): None if it looks readable, else why not.

    It does not decode the pixels, so a file truncated after its header still passes and fails later in
    `load_rgb`, with an error naming it.
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # PIL raises many types for bad files; all mean "unreadable"
        return f"unreadable ({type(error).__name__}: {error})"
    return None


def natural_order(values: Iterable[str]) -> list[str]:
    """Distinct values sorted numerically when all are numbers ("2" before "10"), else as text."""
    distinct = set(values)
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


def encode(values: Sequence[str], order: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map string values to int64 codes 0..K-1 (in `order`, default natural order) and return the names."""
    names = tuple(order) if order is not None else tuple(natural_order(values))
    index = {name: code for code, name in enumerate(names)}
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values)), names


def binary_value_names(attribute: str) -> tuple[str, str]:
    """Names of codes 0 and 1 of a binary attribute: ("not_Male", "Male")."""
    return (f"not_{attribute}", attribute)


def normalise_name(name: str) -> str:
    """Attribute names compare without caring for spaces vs underscores ("Middle Aged" = "Middle_Aged")."""
    return re.sub(r"\s+", "_", name.strip())


def as_name_list(names: str | Sequence[str]) -> list[str]:
    """Sensitive attribute names as a non-empty list; a lone string is one name, not its characters."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("sensitive_attributes is empty; name at least one attribute")
    return names


def check_policy(missing_attributes: str) -> None:
    if missing_attributes not in MISSING_ATTRIBUTE_POLICIES:
        raise ValueError(f"missing_attributes must be one of {MISSING_ATTRIBUTE_POLICIES}, got {missing_attributes!r}")


def examples(items: Sequence[str]) -> str:
    shown = ", ".join(str(item) for item in items[:_SHOWN])
    return shown + (f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def _outside_package_stacklevel() -> int:
    """The warnings stacklevel of the first caller outside fairdml.data, so warnings point at user code."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fairdml.data"):
        frame, level = frame.f_back, level + 1
    return level


class ImageFileDataset(DMLDataset):
    """A DMLDataset whose images are files under `image_root`, with the bookkeeping the readers share.

    Attributes besides DMLDataset's:
      root            the dataset root the user passed
      image_root      folder the relative file names are under
      image_files     (N,) bytes array of file names relative to `image_root`
      class_names     name of each class code (labels are contiguous codes 0..C-1 in natural order)
      skipped_files   paths dropped because they were missing/unreadable (skip_bad_files=True)
      dropped         {reason: count} of every sample removed at construction, so nothing vanishes silently
    """

    dataset_name = "dataset"
    source_hint = ""  # where users obtain the data; appended to missing-file errors

    def __init__(self, root: str | Path, transform: Callable | None = None):
        self.root = Path(root).expanduser()
        self.transform = transform
        self.skipped_files: list[str] = []
        self.dropped: dict[str, int] = {}
        if not self.root.is_dir():
            raise DatasetFileError(
                f"{self.dataset_name} root folder not found: {self.root}. {self.source_hint} "
                f"See docs/datasets.md for the expected layout."
            )

    # ---- errors and filters -------------------------------------------------------------------------
    def missing_file(self, what: str, searched: Sequence[Path]) -> DatasetFileError:
        """An error naming the missing file, the places searched, and where to get the data."""
        places = ", ".join(str(p) for p in searched)
        return DatasetFileError(
            f"{self.dataset_name}: {what} not found (looked for {places}). {self.source_hint} "
            f"See docs/datasets.md for the expected layout."
        )

    def locate(self, what: str, candidates: Sequence[Path], folder: bool = False) -> Path:
        """The first existing candidate path, else an error listing them all."""
        for candidate in candidates:
            if candidate.is_dir() if folder else candidate.is_file():
                return candidate
        raise self.missing_file(what, candidates)

    def record_drop(self, reason: str, removed: Sequence[str]) -> None:
        """Count and warn about samples removed at construction."""
        if not removed:
            return
        self.dropped[reason] = self.dropped.get(reason, 0) + len(removed)
        warnings.warn(
            f"{self.dataset_name}: dropped {len(removed)} image(s): {reason}: {examples(removed)}",
            UserWarning,
            stacklevel=_outside_package_stacklevel(),
        )

    # ---- final assembly -----------------------------------------------------------------------------
    def set_samples(
        self,
        image_root: Path,
        files: Sequence[str],
        class_keys: Sequence[str],
        attributes: np.ndarray,
        attribute_names: Sequence[str],
        attribute_values: Sequence[Sequence[str]],
        *,
        skip_bad_files: bool,
        min_images_per_class: int,
    ) -> np.ndarray:
        """Filter unreadable files (if asked) and small classes, then set the DMLDataset fields.

        Returns the kept positions into the inputs, so a reader can subset its own per-sample arrays.
        """
        if min_images_per_class < 1:
            raise ValueError(f"min_images_per_class must be >= 1, got {min_images_per_class}")
        keep = np.arange(len(files))
        if skip_bad_files:
            reasons = [unreadable_reason(image_root / name) for name in files]
            bad = [i for i, reason in enumerate(reasons) if reason is not None]
            self.skipped_files.extend(str(image_root / files[i]) for i in bad)
            self.record_drop("missing or unreadable file", [f"{files[i]} ({reasons[i]})" for i in bad])
            keep = np.setdiff1d(keep, bad)
        else:  # existence only (a stat each, about a second for CelebA): a missing file fails now, not mid-epoch
            missing = [name for name in files if not (image_root / name).is_file()]
            if missing:
                raise DatasetFileError(
                    f"{self.dataset_name}: {len(missing)} of the {len(files)} listed images are missing under "
                    f"{image_root}: {examples(missing)}; restore them, or set data.options.skip_bad_files=true "
                    f"to leave them out (counted in the data card)"
                )
        keys = np.asarray(class_keys, dtype=object)[keep]
        if min_images_per_class > 1 and len(keep):
            _, inverse, counts = np.unique(keys.astype(str), return_inverse=True, return_counts=True)
            small = counts[inverse] < min_images_per_class
            self.record_drop(
                f"class with fewer than {min_images_per_class} images",
                [files[i] for i in keep[small]],
            )
            keep, keys = keep[~small], keys[~small]
        if len(keep) == 0:
            raise ValueError(
                f"{self.dataset_name}: no images left under {image_root} after filtering "
                f"(dropped: {self.dropped}); check the root, the files and min_images_per_class"
            )
        self.image_root = image_root
        self.image_files = np.array([files[i].encode() for i in keep])
        self.labels, self.class_names = encode([str(k) for k in keys])
        self.attributes = np.asarray(attributes, dtype=np.int64).reshape(len(files), -1)[keep]
        self.attribute_names = tuple(attribute_names)
        self.attribute_values = tuple(tuple(values) for values in attribute_values)
        return keep

    # ---- DMLDataset ---------------------------------------------------------------------------------
    def image_path(self, index: int) -> Path:
        return self.image_root / self.image_files[index].decode()

    def load_image(self, index: int) -> Image.Image:
        return load_rgb(self.image_path(index))

    def __repr__(self) -> str:
        attributes = dict(zip(self.attribute_names, self.attribute_values))
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, images={len(self)}, "
            f"classes={len(self.class_names)}, attributes={attributes})"
        )
