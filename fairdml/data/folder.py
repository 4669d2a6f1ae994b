"""Generic reader: any folder of images plus a CSV that gives each image's class and attributes.

So users can audit their own data without writing a reader: one row per image, string values allowed.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fairdml.data.imageio import ImageFileDataset, as_name_list, check_policy, encode
from fairdml.data.registry import register_dataset


@register_dataset("folder")
class FolderCSV(ImageFileDataset):
    """Images under `root` listed in a CSV (`root/labels.csv` by default; `.tsv` is read tab-separated).

    Columns: `path_column` (relative to `root`, or absolute), `class_column`, and the attribute columns
    named in `sensitive_attributes` (default: every other column). Class and attribute values are strings;
    each becomes codes 0..K-1 in natural order (numerically if all are numbers), with the values kept as
    names (`class_names`, `attribute_values`). An empty attribute cell is an error naming the line, or with
    `missing_attributes="drop"` the row is left out (counted warning). Empty path/class cells are errors,
    and so is an image listed on two rows (it would count twice in its group).
    """

    dataset_name = "folder+CSV"
    source_hint = (
        "Put your images under the root folder and a CSV with a header row 'path,class,<attribute>...' "
        "(one row per image) at root/labels.csv, or name it with csv_file."
    )

    def __init__(
        self,
        root: str,
        sensitive_attributes: Sequence[str] | None = None,
        csv_file: str = "labels.csv",
        path_column: str = "path",
        class_column: str = "class",
        missing_attributes: str = "error",
        min_images_per_class: int = 1,
        skip_bad_files: bool = False,
        transform: Callable | None = None,
    ):
        super().__init__(root, transform)
        check_policy(missing_attributes)
        table = self.locate(f"the label table {csv_file}", [self.root / csv_file])
        header, rows = self._read(table)
        for role, column in (("path_column", path_column), ("class_column", class_column)):
            if column not in header:
                raise KeyError(f"{table} has no {role} {column!r}; its columns: {header}")
        if sensitive_attributes is None:
            names = [c for c in header if c not in (path_column, class_column)]
            if not names:
                raise ValueError(f"{table} has no attribute columns besides {path_column!r} and {class_column!r}")
        else:
            names = as_name_list(sensitive_attributes)
        unknown = [n for n in names if n not in header]
        if unknown:
            raise KeyError(f"{table} has no attribute column(s) {unknown}; its columns: {header}")

        path_at, class_at, attribute_at = (
            header.index(path_column),
            header.index(class_column),
            [header.index(n) for n in names],
        )
        self._check_duplicates(table, rows, path_at)
        kept, incomplete = [], []
        for number, fields in rows:
            if not fields[path_at] or not fields[class_at]:
                raise ValueError(f"{table}:{number}: empty {path_column!r} or {class_column!r} cell")
            if any(not fields[a] for a in attribute_at):
                if missing_attributes == "error":
                    raise ValueError(
                        f"{table}:{number}: empty cell in {names} for {fields[path_at]}; fill it or "
                        f"set missing_attributes='drop' to leave such rows out"
                    )
                incomplete.append(f"{fields[path_at]} (line {number})")
                continue
            kept.append(fields)
        self.record_drop(f"empty attribute cell in {table.name}", incomplete)

        codes, value_names = [], []
        for column in attribute_at:
            column_codes, column_names = encode([fields[column] for fields in kept])
            codes.append(column_codes)
            value_names.append(column_names)
        self.set_samples(
            self.root,
            [fields[path_at] for fields in kept],
            [fields[class_at] for fields in kept],
            np.stack(codes, axis=1) if kept else np.zeros((0, len(names)), dtype=np.int64),
            names,
            value_names,
            skip_bad_files=skip_bad_files,
            min_images_per_class=min_images_per_class,
        )

    def _check_duplicates(self, table: Path, rows: list[tuple[int, list[str]]], path_at: int) -> None:
        """An image listed on more than one row is an error naming it, both lines and the total count."""
        first_line: dict[str, int] = {}
        repeats = []
        for number, fields in rows:
            if not fields[path_at]:
                continue  # an error of its own, raised with its line below
            # the same file however written: `a.jpg`, `./a.jpg`, `root/a.jpg` given absolute
            key = os.path.normpath(os.path.join(self.root, fields[path_at]))
            if key in first_line:
                repeats.append((number, fields[path_at], first_line[key]))
            else:
                first_line[key] = number
        if repeats:
            number, path, first = repeats[0]
            more = f"; {len(repeats)} duplicate rows in all" if len(repeats) > 1 else ""
            raise ValueError(
                f"{table}:{number}: duplicate row for image {path!r} (first listed on line {first}){more}; "
                f"list each image once"
            )

    @staticmethod
    def _read(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
        """Header and (line number, stripped fields) rows; rows of the wrong width are errors."""
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as error:  # name the file and the line, not just a byte offset
            raw = path.read_bytes()
            line = raw[: error.start].count(b"\n") + 1
            raise ValueError(
                f"{path}:{line}: not UTF-8 (byte {raw[error.start]:#04x}); save the table as UTF-8 (e.g. "
                f"iconv -f latin1 -t utf-8)"
            ) from None
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = [c.strip() for c in next(reader, [])]
            rows = []
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise ValueError(f"{path}:{reader.line_num}: {len(fields)} fields, the header has {len(header)}")
                rows.append((reader.line_num, [f.strip() for f in fields]))
        if not header or not rows:
            raise ValueError(f"{path} is empty; expected a header row and one row per image")
        return header, rows
