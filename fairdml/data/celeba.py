"""CelebA reader: identities as classes, any of the 40 binary face attributes as sensitive attributes.

Reads the published text files directly (torchvision's `CelebA` class insists on its integrity checks and
its own folder); accepts the layouts people actually have: files at the root, under `celeba/` (torchvision),
or in the Google Drive folders `Anno/`, `Eval/`, `Img/`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fairdml.data.imageio import ImageFileDataset, as_name_list, binary_value_names, examples
from fairdml.data.registry import register_dataset

PARTITION_NAMES = ("train", "valid", "test")
_SUBFOLDERS = ("", "Anno", "Eval", "Img")


@register_dataset("celeba")
class CelebA(ImageFileDataset):
    """CelebA: `root/img_align_celeba/*.jpg`, `identity_CelebA.txt`, `list_attr_celeba.txt` (+ optional
    `list_eval_partition.txt`, exposed as `official_partition`; DML splits are by identity instead).

    Each requested attribute (e.g. "Male") is binary: the file's -1/1 become codes 0/1 named
    ("not_Male", "Male"). Samples follow `identity_CelebA.txt`'s order; labels are the identities in
    numeric order and `class_names` holds the identity numbers.
    """

    dataset_name = "CelebA"
    source_hint = (
        "Get CelebA from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (img_align_celeba.zip, "
        "Anno/identity_CelebA.txt, Anno/list_attr_celeba.txt, Eval/list_eval_partition.txt) and put the "
        "files in the root folder, or in root/celeba/ as torchvision does."
    )

    def __init__(
        self,
        root: str,
        sensitive_attributes: Sequence[str] = ("Male",),
        image_dir: str = "img_align_celeba",
        min_images_per_class: int = 1,
        skip_bad_files: bool = False,
        transform: Callable | None = None,
    ):
        super().__init__(root, transform)
        bases = [self.root, self.root / "celeba"]
        candidates = [base / sub for base in bases for sub in _SUBFOLDERS]
        identity_file = self.locate("identity_CelebA.txt", [c / "identity_CelebA.txt" for c in candidates])
        attribute_file = self.locate("list_attr_celeba.txt", [c / "list_attr_celeba.txt" for c in candidates])
        image_root = self.locate(f"image folder {image_dir}/", [c / image_dir for c in candidates], folder=True)
        if (image_root / image_dir).is_dir():  # the zip extracts to img_align_celeba/img_align_celeba/ for some
            image_root = image_root / image_dir

        files, identities = self._read_identities(identity_file)
        names = as_name_list(sensitive_attributes)
        rows = self._read_attributes(attribute_file, names)
        missing = [f for f in files if f not in rows]
        if missing:
            raise ValueError(
                f"CelebA: {len(missing)} image(s) of {identity_file} have no row in {attribute_file}: "
                f"{examples(missing)}; the two files come from different releases"
            )
        attributes = np.array([rows[f] for f in files], dtype=np.int64).reshape(len(files), len(names))
        partition = self._read_partition([c / "list_eval_partition.txt" for c in candidates], files)

        keep = self.set_samples(
            image_root,
            files,
            identities,
            attributes,
            names,
            [binary_value_names(name) for name in names],
            skip_bad_files=skip_bad_files,
            min_images_per_class=min_images_per_class,
        )
        self.official_partition = None if partition is None else partition[keep]

    @staticmethod
    def _read_identities(path: Path) -> tuple[list[str], list[str]]:
        """`000001.jpg 2880` per line, no header."""
        files, identities = [], []
        with open(path) as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2 or not parts[1].isdigit():
                    raise ValueError(f"{path}:{number}: expected '<file> <identity>', got {line.strip()!r}")
                files.append(parts[0])
                identities.append(parts[1])
        if not files:
            raise ValueError(f"{path} lists no images")
        return files, identities

    @staticmethod
    def _read_attributes(path: Path, names: list[str]) -> dict[str, tuple[int, ...]]:
        """Line 1: row count; line 2: the 40 names; then `000001.jpg -1  1 ...` with values in {-1, 1}."""
        with open(path) as handle:
            declared = handle.readline().strip()
            header = handle.readline().split()
            lines = handle.read().splitlines()
        if not declared.isdigit() or not header:
            raise ValueError(f"{path}: expected a row count on line 1 and attribute names on line 2")
        unknown = [name for name in names if name not in header]
        if unknown:
            raise KeyError(f"CelebA has no attribute(s) {unknown}; valid names: {header}")
        columns = [header.index(name) + 1 for name in names]  # +1: the file name comes first
        rows: dict[str, tuple[int, ...]] = {}
        for number, line in enumerate(lines, start=3):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != len(header) + 1:
                raise ValueError(f"{path}:{number}: expected a file name and {len(header)} values")
            values = [parts[c] for c in columns]
            if any(v not in ("-1", "1") for v in values):
                raise ValueError(f"{path}:{number}: attribute values must be -1 or 1, got {values}")
            rows[parts[0]] = tuple(int(v == "1") for v in values)
        if len(rows) != int(declared):
            raise ValueError(f"{path}: line 1 declares {declared} rows but the file has {len(rows)}")
        return rows

    @staticmethod
    def _read_partition(candidates: list[Path], files: list[str]) -> np.ndarray | None:
        """Official 0/1/2 = train/valid/test per image (-1 if not listed), or None if the file is absent."""
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            return None
        split = {}
        with open(path) as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise ValueError(f"{path}:{number}: expected '<file> 0|1|2', got {line.strip()!r}")
                split[parts[0]] = int(parts[1])
        return np.array([split.get(f, -1) for f in files], dtype=np.int64)
