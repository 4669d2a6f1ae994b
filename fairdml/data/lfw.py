"""LFW reader: people as classes, attributes from the published LFW attributes table or a CSV.

The table (Kumar et al., `lfw_attributes.txt`) holds real-valued classifier scores, not labels; a
sensitive attribute is binarised by a threshold (default 0, the sign), or kept as categories.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fairdml.data.imageio import (
    IMAGE_SUFFIXES,
    ImageFileDataset,
    ImageReadError,
    as_name_list,
    binary_value_names,
    check_policy,
    encode,
    examples,
    normalise_name,
)
from fairdml.data.registry import register_dataset

IMAGE_DIRS = ("lfw-deepfunneled", "lfw_funneled", "lfw-funneled", "lfw")
Key = tuple[str, int]  # (person folder name, image number)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@register_dataset("lfw")
class LFW(ImageFileDataset):
    """LFW: `root/<image_dir>/<Person_Name>/<Person_Name>_0001.jpg` plus `root/lfw_attributes.txt` (or CSV).

    Attribute files:
      * the LFW attributes table: `#` comment line(s), then the tab-separated header
        `#<TAB>person<TAB>imagenum<TAB>Male<TAB>Asian...`, then rows `Aaron Eckhart<TAB>1<TAB>1.56...`;
      * a `.csv` with columns `person`, `imagenum` and one column per attribute.
    Names match with spaces or underscores ("Middle Aged" = "Middle_Aged"); the dataset reports the
    underscore form. A numeric attribute with `threshold` set becomes binary: score > threshold is code 1
    named e.g. "Male", else code 0 "not_Male". With `threshold=None`, or for text columns, the distinct
    values become codes in natural order, named by the values.

    Images without an attribute row: `missing_attributes="drop"` (counted warning, in `dropped`) or
    "error". A row whose image file is absent is a missing image: an error naming it, or, with
    `skip_bad_files=True`, listed in `skipped_files`. People with fewer than `min_images_per_class`
    images are dropped (counted): DML needs two images of a person to form a positive pair.
    """

    dataset_name = "LFW"
    source_hint = (
        "Get LFW from https://vis-www.cs.umass.edu/lfw/ (lfw-deepfunneled.tgz or lfw.tgz) and the attribute "
        "table from https://www.cs.columbia.edu/CAVE/databases/pubfig/download/lfw_attributes.txt; extract "
        "the images to root/lfw-deepfunneled/ (or root/lfw/) and put lfw_attributes.txt in root."
    )

    def __init__(
        self,
        root: str,
        sensitive_attributes: Sequence[str] = ("Male",),
        image_dir: str | None = None,
        attributes_file: str = "lfw_attributes.txt",
        threshold: float | None = 0.0,
        missing_attributes: str = "drop",
        min_images_per_class: int = 2,
        skip_bad_files: bool = False,
        transform: Callable | None = None,
    ):
        super().__init__(root, transform)
        check_policy(missing_attributes)
        dirs = IMAGE_DIRS if image_dir is None else (image_dir,)
        image_root = self.locate("the image folder", [self.root / d for d in dirs], folder=True)
        if (image_root / image_root.name).is_dir():  # some archives/mirrors nest lfw/lfw/
            image_root = image_root / image_root.name
        table_path = self.locate("the attribute file", [self.root / attributes_file])
        header, rows = self._read_csv(table_path) if table_path.suffix == ".csv" else self._read_table(table_path)

        requested = as_name_list(sensitive_attributes)
        by_name = {normalise_name(name): column for column, name in enumerate(header)}
        unknown = [name for name in requested if normalise_name(name) not in by_name]
        if unknown:
            raise KeyError(f"LFW attribute file {table_path} has no attribute(s) {unknown}; valid names: {header}")
        columns = [by_name[normalise_name(name)] for name in requested]

        images = self._list_images(image_root)
        without_row = [f for f, key in images if key not in rows]
        if without_row and missing_attributes == "error":
            raise ValueError(
                f"LFW: {len(without_row)} image(s) have no row in {table_path}: {examples(without_row)}; "
                f"set missing_attributes='drop' to leave them out"
            )
        self.record_drop(f"no row in {table_path.name}", without_row)
        images = [(f, key) for f, key in images if key in rows]
        self._check_rows_have_images(image_root, {key for _, key in images}, rows, skip_bad_files)

        files = [f for f, _ in images]
        values = [[rows[key][c] for _, key in images] for c in columns]
        codes, value_names = [], []
        for name, column in zip(requested, values):
            column_codes, column_names = self._encode(normalise_name(name), column, threshold)
            codes.append(column_codes)
            value_names.append(column_names)
        self.set_samples(
            image_root,
            files,
            [key[0] for _, key in images],
            np.stack(codes, axis=1) if files else np.zeros((0, len(requested)), dtype=np.int64),
            [normalise_name(name) for name in requested],
            value_names,
            skip_bad_files=skip_bad_files,
            min_images_per_class=min_images_per_class,
        )

    @staticmethod
    def _encode(name: str, column: list[str], threshold: float | None) -> tuple[np.ndarray, tuple[str, ...]]:
        if threshold is not None and all(_is_number(v) for v in column):
            scores = np.array([float(v) for v in column])
            return (scores > threshold).astype(np.int64), binary_value_names(name)
        return encode(column)

    @staticmethod
    def _list_images(image_root: Path) -> list[tuple[str, Key]]:
        """(relative file, (person, number)) for `Person/Person_0001.jpg`; other names get number -1."""
        images = []
        for person in sorted(p for p in image_root.iterdir() if p.is_dir()):
            for file in sorted(person.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                prefix, _, number = file.stem.rpartition("_")
                key = (person.name, int(number) if prefix == person.name and number.isdigit() else -1)
                images.append((f"{person.name}/{file.name}", key))
        return images

    def _check_rows_have_images(
        self, image_root: Path, found: set[Key], rows: dict[Key, list[str]], skip_bad_files: bool
    ) -> None:
        """A row without its image means a missing file: an error, or skipped and counted."""
        missing = sorted(str(image_root / p / f"{p}_{n:04d}.jpg") for p, n in rows.keys() - found)
        if missing and not skip_bad_files:
            raise ImageReadError(
                f"LFW: {len(missing)} image(s) in the attribute file are missing: {examples(missing)}; "
                f"restore them or set skip_bad_files=True to skip them"
            )
        self.skipped_files.extend(missing)
        self.record_drop("listed in the attribute file but missing", missing)

    @staticmethod
    def _read_table(path: Path) -> tuple[list[str], dict[Key, list[str]]]:
        """The LFW table: `#` comments, the `#\\tperson\\timagenum\\t...` header, tab-separated rows."""
        header: list[str] | None = None
        rows: dict[Key, list[str]] = {}
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                if line.startswith("#"):
                    fields = [f.strip() for f in line.lstrip("#").split("\t")]
                    while fields and not fields[0]:
                        fields.pop(0)
                    if fields[:2] == ["person", "imagenum"]:
                        header = fields[2:]
                    continue
                if header is None:
                    raise ValueError(f"{path}:{number}: data before the '#\\tperson\\timagenum\\t...' header line")
                fields = line.split("\t")
                if len(fields) != len(header) + 2 or not fields[1].strip().isdigit():
                    raise ValueError(
                        f"{path}:{number}: expected person, imagenum and {len(header)} tab-separated values"
                    )
                rows[(normalise_name(fields[0]), int(fields[1]))] = [f.strip() for f in fields[2:]]
        if header is None:
            raise ValueError(f"{path}: no header line '#\\tperson\\timagenum\\t<attribute>...' found")
        return header, rows

    @staticmethod
    def _read_csv(path: Path) -> tuple[list[str], dict[Key, list[str]]]:
        """A CSV with `person`, `imagenum` and attribute columns."""
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            columns = [c.strip() for c in next(reader, [])]
            if columns[:2] != ["person", "imagenum"]:
                raise ValueError(f"{path}: the first two columns must be 'person,imagenum', got {columns[:2]}")
            rows: dict[Key, list[str]] = {}
            for number, fields in enumerate(reader, start=2):
                if not fields:
                    continue
                if len(fields) != len(columns) or not fields[1].strip().isdigit():
                    raise ValueError(f"{path}:{number}: expected {len(columns)} fields with an integer imagenum")
                rows[(normalise_name(fields[0]), int(fields[1]))] = [f.strip() for f in fields[2:]]
        return columns[2:], rows
