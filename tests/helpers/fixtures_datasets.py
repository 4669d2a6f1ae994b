"""Writers of tiny datasets in each reader's exact on-disk format (real headers and column layouts).

Plain functions, not pytest fixtures, so the benchmark and the tests share them without a conftest.
Images are small generated JPEGs (PNGs in the heavy-tailed folder set); each writer returns the ground truth
the tests compare against (or, for the heavy-tailed set, the path a config needs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]

LFW_ATTRIBUTES = ("Male", "Asian", "White", "Black", "Baby", "Child", "Youth", "Middle Aged", "Senior")


def write_jpeg(path: Path, seed: int, size: int = 16) -> None:
    """A small random JPEG (distinct per seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def write_garbage(path: Path) -> None:
    """A file with an image name whose bytes are not an image."""
    path.write_bytes(b"this is not a jpeg \x00\x01\x02" * 8)


# ---- CelebA -------------------------------------------------------------------------------------------
def write_celeba(root: Path, torchvision_layout: bool = False) -> dict:
    """7 images of identities 2880 (3), 10 (3) and 5 (1); -1/1 attributes in the published layout."""
    base = root / "celeba" if torchvision_layout else root
    files = [f"{i:06d}.jpg" for i in range(1, 8)]
    identities = [2880, 2880, 10, 10, 10, 5, 2880]
    rng = np.random.default_rng(0)
    values = rng.choice([-1, 1], size=(len(files), len(CELEBA_ATTRIBUTES)))
    partition = [0, 0, 0, 1, 1, 2, 2]
    _write_celeba_files(base, files, identities, values, partition)
    return {"files": files, "identities": identities, "values": values, "partition": partition, "base": base}


def _write_celeba_files(
    base: Path, files: list[str], identities: list[int], values: np.ndarray, partition: list[int] | None
) -> None:
    for i, name in enumerate(files):
        write_jpeg(base / "img_align_celeba" / name, seed=i)
    (base / "identity_CelebA.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, identities)))
    # The real file: row count, then the 40 names (with a trailing space), then right-aligned -1/1 values.
    lines = [str(len(files)), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [f + " " + " ".join(f"{v:>2d}" for v in row) for f, row in zip(files, values)]
    (base / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition is not None:
        (base / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, partition)))


# ---- LFW ----------------------------------------------------------------------------------------------
def write_lfw(
    root: Path,
    image_dir: str = "lfw-deepfunneled",
    extra_image_without_row: bool = True,
    row_without_image: bool = False,
    csv: bool = False,
) -> dict:
    """People Aaron_Eckhart (2 images), Zico (3), Lone_Person (1); scores per LFW_ATTRIBUTES.

    `extra_image_without_row` adds Zico_0004.jpg with no attribute row; `row_without_image` adds a row for
    Aaron_Eckhart_0003.jpg whose file is absent.
    """
    people = {"Aaron Eckhart": [1, 2], "Zico": [1, 2, 3], "Lone Person": [1]}
    rng = np.random.default_rng(1)
    rows, seed = [], 0
    for person, numbers in people.items():
        folder = person.replace(" ", "_")
        for number in numbers:
            write_jpeg(root / image_dir / folder / f"{folder}_{number:04d}.jpg", seed=seed)
            seed += 1
            rows.append((person, number, np.round(rng.normal(size=len(LFW_ATTRIBUTES)), 5)))
    if extra_image_without_row:
        write_jpeg(root / image_dir / "Zico" / "Zico_0004.jpg", seed=99)
    if row_without_image:
        rows.append(("Aaron Eckhart", 3, np.zeros(len(LFW_ATTRIBUTES))))
    if csv:
        lines = ["person,imagenum," + ",".join(LFW_ATTRIBUTES)]
        lines += [f"{p},{n}," + ",".join(str(v) for v in s) for p, n, s in rows]
        (root / "lfw_attributes.csv").write_text("\n".join(lines) + "\n")
    else:
        lines = [
            "# LFW attributes file (v0.1). See http://www.cs.columbia.edu/CAVE/databases/pubfig/ for more info.",
            "#\tperson\timagenum\t" + "\t".join(LFW_ATTRIBUTES),
        ]
        lines += [f"{p}\t{n}\t" + "\t".join(str(v) for v in s) for p, n, s in rows]
        (root / "lfw_attributes.txt").write_text("\n".join(lines) + "\n")
    return {"rows": rows, "image_dir": root / image_dir}


# ---- CUB-200-2011 -------------------------------------------------------------------------------------
CUB_ATTRIBUTES = [
    "has_bill_shape::curved_(up_or_down)",
    "has_bill_shape::dagger",
    "has_primary_color::blue",
    "has_primary_color::brown",
    "has_primary_color::black",
    "has_primary_color::white",
]
CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]


def write_cub(root: Path, names_file_at: str = "archive") -> dict:
    """6 images (3 per species) under `root/CUB_200_2011/`; `names_file_at` places attributes.txt as the
    archive does ("archive": next to CUB_200_2011/), at the base ("base") or in attributes/ ("attributes").

    Present primary colours (attribute id: certainty) per image id, chosen to exercise every rule.
    """
    base = root / "CUB_200_2011"
    images, class_ids = [], []
    for image_id in range(1, 7):
        class_id = 1 if image_id <= 3 else 2
        species = CUB_CLASSES[class_id - 1]
        stem = species.split(".", 1)[1]
        images.append(f"{species}/{stem}_{image_id:04d}_{796110 + image_id}.jpg")
        class_ids.append(class_id)
        write_jpeg(base / "images" / images[-1], seed=image_id)
    (base / "images.txt").write_text("".join(f"{i} {p}\n" for i, p in enumerate(images, start=1)))
    (base / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(class_ids, start=1)))
    (base / "classes.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CUB_CLASSES, start=1)))
    names_dir = {"archive": root, "base": base, "attributes": base / "attributes"}[names_file_at]
    names_dir.mkdir(parents=True, exist_ok=True)
    (names_dir / "attributes.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(CUB_ATTRIBUTES, start=1)))
    # image id -> {attribute id: certainty} of flags marked present (ids 3..6 are the primary colours)
    present = {
        1: {5: 4},  # black only
        2: {5: 3, 6: 4},  # black and white; white more certain
        3: {},  # no colour marked
        4: {3: 2},  # blue (guessing)
        5: {6: 4, 1: 4},  # white (+ a bill shape)
        6: {4: 3, 5: 3},  # brown and black, equal certainty
    }
    lines = []
    for image_id in range(1, 7):
        for attribute_id in range(1, len(CUB_ATTRIBUTES) + 1):
            certainty = present[image_id].get(attribute_id)
            is_present, certainty = (1, certainty) if certainty else (0, 1 + (image_id + attribute_id) % 4)
            lines.append(f"{image_id} {attribute_id} {is_present} {certainty} {1.234 * attribute_id:.3f}")
    lines[10] += " 0"  # image 2, attribute 5: a line with an extra field, as some published lines have
    (base / "attributes").mkdir(exist_ok=True)
    (base / "attributes" / "image_attribute_labels.txt").write_text("\n".join(lines) + "\n")
    return {"base": base, "images": images, "class_ids": class_ids, "present": present}


# ---- scaled populations for the split / imbalance protocol ---------------------------------------------
def population(n_classes: int, images_per_class: int, minority_classes: int) -> list[tuple[int, int]]:
    """(class, group) per image: classes 0..minority_classes-1 are the minority group 1, the rest group 0."""
    return [(c, int(c < minority_classes)) for c in range(n_classes) for _ in range(images_per_class)]


def write_population(kind: str, root: Path, people: list[tuple[int, int]]) -> dict:
    """Write `people` ((class, group) per image) in `kind`'s on-disk format, the group as its attribute.

    Returns the reader options that select that attribute and the group's value names (majority, minority).
    """
    if kind == "celeba":
        files = [f"{i:06d}.jpg" for i in range(1, len(people) + 1)]
        values = np.random.default_rng(2).choice([-1, 1], size=(len(people), len(CELEBA_ATTRIBUTES)))
        values[:, CELEBA_ATTRIBUTES.index("Male")] = [1 if g else -1 for _, g in people]
        _write_celeba_files(root, files, [c + 1 for c, _ in people], values, None)
        return {
            "options": {"sensitive_attributes": ["Male"]},
            "attribute": "Male",
            "values": ("not_Male", "Male"),
        }
    if kind == "lfw":
        lines = ["# LFW attributes file (v0.1).", "#\tperson\timagenum\t" + "\t".join(LFW_ATTRIBUTES)]
        numbers: dict[int, int] = {}
        for seed, (c, g) in enumerate(people):
            numbers[c] = numbers.get(c, 0) + 1
            write_jpeg(root / "lfw" / f"Person_{c:03d}" / f"Person_{c:03d}_{numbers[c]:04d}.jpg", seed=seed)
            scores = [1.5 if g else -1.5] + [0.25] * (len(LFW_ATTRIBUTES) - 1)
            lines.append(f"Person {c:03d}\t{numbers[c]}\t" + "\t".join(str(v) for v in scores))
        (root / "lfw_attributes.txt").write_text("\n".join(lines) + "\n")
        return {
            "options": {"sensitive_attributes": ["Male"]},
            "attribute": "Male",
            "values": ("not_Male", "Male"),
        }
    if kind == "cub":
        n_classes = max(c for c, _ in people) + 1
        classes = [f"{c + 1:03d}.Species_{c}" for c in range(n_classes)]
        images = [f"{classes[c]}/Species_{c}_{i:04d}_{i}.jpg" for i, (c, _) in enumerate(people, start=1)]
        for seed, image in enumerate(images):
            write_jpeg(root / "images" / image, seed=seed)
        (root / "images.txt").write_text("".join(f"{i} {p}\n" for i, p in enumerate(images, start=1)))
        (root / "image_class_labels.txt").write_text(
            "".join(f"{i} {c + 1}\n" for i, (c, _) in enumerate(people, start=1))
        )
        (root / "classes.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(classes, start=1)))
        (root / "attributes.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(CUB_ATTRIBUTES, start=1)))
        black = CUB_ATTRIBUTES.index("has_primary_color::black") + 1
        lines = [
            f"{i} {a} {int(a == black and g == 1)} 3 1.000"
            for i, (_, g) in enumerate(people, start=1)
            for a in range(1, len(CUB_ATTRIBUTES) + 1)
        ]
        (root / "attributes").mkdir(exist_ok=True)
        (root / "attributes" / "image_attribute_labels.txt").write_text("\n".join(lines) + "\n")
        name = "has_primary_color::black"
        return {
            "options": {"sensitive_attributes": [name]},
            "attribute": name,
            "values": (f"not_{name}", name),
        }
    if kind == "folder":
        lines = ["path,class,tone"]
        for seed, (c, g) in enumerate(people):
            write_jpeg(root / "img" / f"{seed}.jpg", seed=seed)
            lines.append(f"img/{seed}.jpg,c{c:03d},{'dark' if g else 'light'}")
        (root / "labels.csv").write_text("\n".join(lines) + "\n")
        return {"options": {}, "attribute": "tone", "values": ("light", "dark")}
    raise ValueError(f"unknown fixture kind {kind!r}")


# ---- folder + CSV -------------------------------------------------------------------------------------
def write_folder(root: Path) -> dict:
    """5 images in two sub-folders and labels.csv with string classes and attributes."""
    rows = [
        ("photos/a.jpg", "cat", "female", "young"),
        ("photos/b.jpg", "cat", "male", "old"),
        ("photos/c.jpg", "dog", "male", "young"),
        ("more/d.jpg", "dog", "female", "young"),
        ("more/e.jpg", "emu", "male", "old"),
    ]
    for seed, (path, *_) in enumerate(rows):
        write_jpeg(root / path, seed=seed)
    lines = ["path,class,sex,age"] + [",".join(row) for row in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return {"rows": rows}


def write_heavy_tailed_folder_dataset(root: Path, seed: int = 0, n_classes: int = 60) -> Path:
    """A folder+CSV dataset with LFW's class sizes: two large classes, three of 8-12 images, the rest 2-4.

    `root/img/person_XXX/NNNN.png` (8×8 RGB: a per-class colour plus noise) and `root/labels.csv` with the
    columns `path,class,skin`; `skin` (light/dark) is fixed per class, about a quarter of the classes dark,
    the largest class light. 60 classes: 48 + 24 + 3 × 8-12 + 55 × 2-4 images (about 270). Returns the
    CSV's path; point `data=folder` at it with
    `data=folder data.root=<csv.parent> data.options.csv_file=<csv.name> data.sensitive_attribute=skin`
    and small batches and images, e.g. `data.batch_size=16 data.samples_per_class=2 data.image_size=32`
    (configs/data/folder.yaml's 224 would only slow a test down).
    """
    if n_classes < 6:
        raise ValueError(f"n_classes must be >= 6, got {n_classes}")
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([[48, 24], rng.integers(8, 13, size=3), rng.integers(2, 5, size=n_classes - 5)])
    dark = np.zeros(n_classes, dtype=bool)
    dark[1 + rng.choice(n_classes - 1, size=max(2, n_classes // 4), replace=False)] = True
    lines = ["path,class,skin"]
    for c, size in enumerate(sizes):
        colour = rng.integers(40, 216, size=3)
        for i in range(size):
            pixels = np.clip(colour + rng.integers(-40, 41, size=(8, 8, 3)), 0, 255).astype(np.uint8)
            path = f"img/person_{c:03d}/{i:04d}.png"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / path, format="PNG")
            lines.append(f"{path},person_{c:03d},{'dark' if dark[c] else 'light'}")
    table = root / "labels.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


def write_two_attribute_celeba(root, n_classes: int = 48, images: int = 6) -> dict[str, tuple[int, int]]:
    """A CelebA fixture whose identities are Male for the first third and Pale_Skin for every other one, so all
    four crossed groups have classes. Returns file -> (Male, Pale_Skin) as 0/1, read back from the file."""
    root.mkdir(parents=True, exist_ok=True)
    write_population("celeba", root, population(n_classes, images, n_classes // 3))
    identity = dict(line.split() for line in (root / "identity_CelebA.txt").read_text().splitlines())
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    column = CELEBA_ATTRIBUTES.index("Pale_Skin") + 1
    for i in range(2, len(lines)):
        parts = lines[i].split()
        parts[column] = "1" if int(identity[parts[0]]) % 2 == 0 else "-1"
        lines[i] = " ".join(parts)
    path.write_text("\n".join(lines) + "\n")
    male = CELEBA_ATTRIBUTES.index("Male") + 1
    return {p[0]: (int(p[male] == "1"), int(p[column] == "1")) for p in (line.split() for line in lines[2:])}
