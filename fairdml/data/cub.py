"""CUB-200-2011 reader: the 200 species as classes, per-image attribute annotations as sensitive attributes.

CUB's 312 attributes are binary "group::value" flags (e.g. `has_primary_color::black`) marked per image by
annotators, with a certainty (1 not visible, 2 guessing, 3 probably, 4 definitely). A sensitive attribute
is either one flag (binary) or a whole group collapsed to one value per image (multi-valued); see `CUB`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from fairdml.data.imageio import ImageFileDataset, as_name_list, binary_value_names
from fairdml.data.registry import register_dataset

GROUP_RULES = ("exclusive", "most_certain")
MULTIPLE, NONE = "multiple", "none"


@register_dataset("cub")
class CUB(ImageFileDataset):
    """CUB-200-2011 from its published files: `images.txt`, `image_class_labels.txt`, `classes.txt`,
    `attributes/image_attribute_labels.txt`, the names file `attributes.txt` (at the root, in
    `attributes/`, or next to the `CUB_200_2011/` folder as the archive extracts it) and `images/`.

    A flag counts as present for an image when `is_present` is 1 and `certainty_id >= min_certainty`.
    Each entry of `sensitive_attributes` is
      * `group::value` (e.g. "has_primary_color::black"): binary, codes 0/1 named
        ("not_has_primary_color::black", "has_primary_color::black");
      * `group` (e.g. "has_primary_color"): multi-valued. Its values are those of the group, or the
        coarse groups of `value_groups[group]` (e.g. {"dark": ["black", "brown"], "light": ["white"]};
        values not listed there are ignored). Per image, rule "exclusive": the one value present, else
        "multiple" (several present) or "none"; rule "most_certain": the present value annotated with the
        highest certainty (ties: lowest attribute id), else "none". Codes follow the group's value order,
        then "multiple" (exclusive only), then "none".
    Labels are the species in `classes.txt` order; `image_ids` holds CUB's own image ids.
    """

    dataset_name = "CUB-200-2011"
    source_hint = (
        "Get CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/ and extract it so "
        "that root/images.txt and root/images/ exist (root may also be the folder that holds CUB_200_2011/)."
    )

    def __init__(
        self,
        root: str,
        sensitive_attributes: Sequence[str] = ("has_primary_color::black",),
        value_groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        group_rule: str = "exclusive",
        min_certainty: int = 1,
        min_images_per_class: int = 1,
        skip_bad_files: bool = False,
        transform: Callable | None = None,
    ):
        super().__init__(root, transform)
        if group_rule not in GROUP_RULES:
            raise ValueError(f"group_rule must be one of {GROUP_RULES}, got {group_rule!r}")
        if not 1 <= min_certainty <= 4:
            raise ValueError(f"min_certainty must be in 1..4 (not visible..definitely), got {min_certainty}")
        images_file = self.locate("images.txt", [self.root / "images.txt", self.root / "CUB_200_2011" / "images.txt"])
        base = images_file.parent
        image_paths = self._read_id_table(images_file)
        class_of = self._read_id_table(self.locate("image_class_labels.txt", [base / "image_class_labels.txt"]))
        class_names = self._read_id_table(self.locate("classes.txt", [base / "classes.txt"]))
        names_file = self.locate(
            "the attribute names file attributes.txt",
            [base / "attributes.txt", base / "attributes" / "attributes.txt", base.parent / "attributes.txt"],
        )
        attribute_ids = {name: int(i) for i, name in self._read_id_table(names_file).items()}
        labels_file = self.locate(
            "attributes/image_attribute_labels.txt", [base / "attributes" / "image_attribute_labels.txt"]
        )

        specs = as_name_list(sensitive_attributes)
        choices = [self._resolve(spec, attribute_ids, (value_groups or {}).get(spec)) for spec in specs]
        unused = sorted(set(value_groups or {}) - set(specs))
        if unused:
            raise KeyError(f"value_groups names {unused}, which are not among sensitive_attributes {specs}")
        wanted = {attribute_id for choice in choices for attribute_id in choice}
        present = self._read_present(labels_file, wanted, min_certainty)

        ids = sorted(image_paths, key=int)
        missing_class = [i for i in ids if i not in class_of or class_of[i] not in class_names]
        if missing_class:
            raise ValueError(
                f"CUB: image id(s) {missing_class[:5]} have no class in image_class_labels.txt/classes.txt"
            )
        codes = np.zeros((len(ids), len(specs)), dtype=np.int64)
        value_names = []
        for column, (spec, choice) in enumerate(zip(specs, choices)):
            names = list(dict.fromkeys(choice.values()))
            if "::" in spec:
                value_names.append(binary_value_names(spec))
            else:
                value_names.append((*names, *([MULTIPLE] if group_rule == "exclusive" else []), NONE))
            for row, image_id in enumerate(ids):
                marked = present.get(int(image_id), {})
                codes[row, column] = self._code(choice, names, marked, binary="::" in spec, rule=group_rule)

        keep = self.set_samples(
            base / "images",
            [image_paths[i] for i in ids],
            [class_names[class_of[i]] for i in ids],
            codes,
            specs,
            value_names,
            skip_bad_files=skip_bad_files,
            min_images_per_class=min_images_per_class,
        )
        self.image_ids = np.array([int(i) for i in ids], dtype=np.int64)[keep]

    @staticmethod
    def _resolve(
        spec: str, attribute_ids: dict[str, int], groups: Mapping[str, Sequence[str]] | None
    ) -> dict[int, str]:
        """attribute id -> the value name it counts as, for one sensitive attribute spec."""
        by_group: dict[str, dict[str, int]] = {}
        for name, attribute_id in attribute_ids.items():
            group, _, value = name.partition("::")
            by_group.setdefault(group, {})[value] = attribute_id
        group, _, value = spec.partition("::")
        if group not in by_group:
            raise KeyError(
                f"CUB has no attribute group {group!r}; give 'group' or 'group::value' with a group among "
                f"{sorted(by_group)}"
            )
        values = by_group[group]
        if value:
            if value not in values or groups:
                reason = "value_groups applies to whole groups only" if groups else f"no value {value!r}"
                raise KeyError(f"CUB attribute {spec!r}: {reason}; values of {group}: {sorted(values)}")
            return {values[value]: spec}
        if groups is None:
            return {attribute_id: value for value, attribute_id in sorted(values.items(), key=lambda kv: kv[1])}
        choice: dict[int, str] = {}
        for coarse, members in groups.items():
            for member in [members] if isinstance(members, str) else members:
                if member not in values:
                    raise KeyError(f"value_groups[{group!r}][{coarse!r}]: no value {member!r}; valid: {sorted(values)}")
                if values[member] in choice:
                    raise ValueError(f"value_groups[{group!r}]: {member!r} is in two coarse groups")
                choice[values[member]] = coarse
        return choice

    @staticmethod
    def _code(choice: dict[int, str], names: list[str], marked: dict[int, int], binary: bool, rule: str) -> int:
        """The code of one image for one sensitive attribute, from its present flags {id: certainty}."""
        hits = [(marked[i], -i, choice[i]) for i in choice if i in marked]
        if binary:
            return int(bool(hits))
        none_code = len(names) + (1 if rule == "exclusive" else 0)
        if not hits:
            return none_code
        if rule == "most_certain":
            return names.index(max(hits)[2])
        found = {name for _, _, name in hits}
        return names.index(found.pop()) if len(found) == 1 else len(names)

    @staticmethod
    def _read_id_table(path: Path) -> dict[str, str]:
        """`<id> <text>` per line (images.txt, classes.txt, attributes.txt, image_class_labels.txt)."""
        table = {}
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.split(maxsplit=1)
                if not parts:
                    continue
                if len(parts) != 2 or not parts[0].isdigit():
                    raise ValueError(f"{path}:{number}: expected '<id> <value>', got {line.strip()!r}")
                table[parts[0]] = parts[1].strip()
        return table

    @staticmethod
    def _read_present(path: Path, wanted: set[int], min_certainty: int) -> dict[int, dict[int, int]]:
        """image id -> {attribute id: certainty} of the wanted flags marked present.

        Lines are `image_id attribute_id is_present certainty_id time`; some published lines carry extra
        fields, so only the first four are read.
        """
        wanted_text = {str(i) for i in wanted}
        present: dict[int, dict[int, int]] = {}
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.split(maxsplit=4)
                if not parts:
                    continue
                if len(parts) < 4:
                    raise ValueError(f"{path}:{number}: expected 'image_id attribute_id is_present certainty_id ...'")
                if parts[1] not in wanted_text:
                    continue
                if parts[2] not in ("0", "1") or parts[3] not in ("1", "2", "3", "4") or not parts[0].isdigit():
                    raise ValueError(f"{path}:{number}: is_present must be 0/1 and certainty_id 1..4: {line.strip()!r}")
                if parts[2] == "1" and int(parts[3]) >= min_certainty:
                    present.setdefault(int(parts[0]), {})[int(parts[1])] = int(parts[3])
        return present
