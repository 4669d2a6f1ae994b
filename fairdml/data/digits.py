"""The embedded default dataset: scikit-learn's handwritten digits composed into two-digit "people".

Why: fairdml must train and show a real subgroup gap offline, in minutes, with nothing to download.
scikit-learn ships 1,797 real 8×8 digit scans. Each class is a two-digit number (100 classes, enough for
class-disjoint train/val/test splits); each sample draws fresh scans of its two digits and jitters them.
The sensitive attribute `style` is a property of the class (as skin tone is of a person) and changes the
appearance: the majority is light ink on a dark background; the minority has dark tinted ink on a light,
noisy background. The same digit scans appear in both styles, so a fair embedding can exist.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits

from fairdml.data.base import DMLDataset
from fairdml.data.registry import register_dataset

STYLES = ("majority", "minority")
# How the minority looks: "global" changes every pixel (ink, background, texture); "strokes" tints the ink only
# (background as the majority's); "mark" keeps the majority's look and adds a small square in a corner. The
# last two test whether a mitigation needs an attribute written into every pixel.
MINORITY_STYLES = ("global", "strokes", "mark")
MARK_FRACTION = 0.125  # the mark's side, as a share of the image side (4 px at 32 px)


def _render(
    glyphs: np.ndarray, minority: np.ndarray, rng: np.random.Generator, size: int, minority_style: str = "global"
) -> np.ndarray:
    """Compose (N, 2, 8, 8) digit scans into (N, size, size, 3) uint8 RGB images in the given styles.

    Every variant draws the same random numbers, so the scans, offsets and classes are the same in each."""
    n = len(glyphs)
    ink = torch.from_numpy(glyphs / 16.0).float().reshape(n * 2, 1, 8, 8)
    digit_px = size // 2
    ink = F.interpolate(ink, size=(digit_px, digit_px), mode="bilinear", align_corners=False)
    ink = ink.reshape(n, 2, digit_px, digit_px)
    pair = torch.cat([ink[:, 0], ink[:, 1]], dim=2)  # (N, digit_px, size)
    is_min = torch.from_numpy(minority)
    canvas = torch.zeros(n, size, size)
    offsets = rng.integers(0, size - digit_px + 1, size=n)
    for i, top in enumerate(offsets):
        canvas[i, top : top + digit_px] = pair[i]
    canvas = canvas.clamp(0, 1)
    majority_rgb = canvas[..., None] * torch.tensor([1.0, 1.0, 1.0])
    texture = torch.from_numpy(rng.uniform(0.75, 1.0, size=(n, size, size, 1))).float()
    ink_colour = torch.tensor([0.55, 0.15, 0.1])
    paper_colour = torch.tensor([0.95, 0.9, 0.7])
    if minority_style == "global":
        minority_rgb = texture * (paper_colour * (1 - canvas[..., None]) + ink_colour * canvas[..., None])
    elif minority_style == "strokes":
        minority_rgb = canvas[..., None] * torch.tensor([1.0, 0.55, 0.2])  # orange ink, the same black background
    else:  # "mark": the majority's image with a bright square in the top-left corner
        side = max(1, round(MARK_FRACTION * size))
        minority_rgb = majority_rgb.clone()
        minority_rgb[:, :side, :side] = torch.tensor([1.0, 0.8, 0.0])
    rgb = torch.where(is_min[:, None, None, None], minority_rgb, majority_rgb)
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def single_digit_images(
    count: int, seed: int, image_size: int = 32, minority_style: str = "global"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` images of ONE digit scan, in the left or the right half, half of them in each style: the data of
    fairdml's own pretraining (`fairdml.models.pretraining`), which must see both styles equally and no
    two-digit class. Same rendering as `ComposedDigits` (the other half is blank ink).

    Returns:
        (count, size, size, 3) uint8 images, (count,) digit labels 0..9, (count,) style codes (1 = minority).
    """
    if minority_style not in MINORITY_STYLES:
        raise ValueError(f"minority_style must be one of {MINORITY_STYLES}, got {minority_style!r}")
    rng = np.random.default_rng(seed)
    digits = load_digits()
    picks = rng.integers(0, len(digits.target), size=count)
    glyphs = np.zeros((count, 2, 8, 8))
    side = rng.integers(0, 2, size=count)
    glyphs[np.arange(count), side] = digits.images[picks]
    style = rng.permutation(np.arange(count) % 2).astype(np.int64)
    images = _render(glyphs, style.astype(bool), rng, image_size, minority_style)
    return images, digits.target[picks].astype(np.int64), style


@register_dataset("digits")
class ComposedDigits(DMLDataset):
    """100 classes ("00".."99") × `samples_per_class` images, with a per-class sensitive attribute `style`.

    `minority_class_share` of the classes (chosen with `seed`) have the minority style, drawn as
    `minority_style` says (`MINORITY_STYLES`). The training imbalance is applied later by the data module
    (`data.minority_share`), not here.
    """

    def __init__(
        self,
        samples_per_class: int = 40,
        num_classes: int = 100,
        minority_class_share: float = 0.5,
        image_size: int = 32,
        seed: int = 0,
        minority_style: str = "global",
    ):
        if minority_style not in MINORITY_STYLES:
            raise ValueError(f"minority_style must be one of {MINORITY_STYLES}, got {minority_style!r}")
        if not 2 <= num_classes <= 100:
            raise ValueError(f"num_classes must be in [2, 100] (two-digit numbers), got {num_classes}")
        if samples_per_class < 2:
            raise ValueError(f"samples_per_class must be >= 2 (DML needs positives), got {samples_per_class}")
        rng = np.random.default_rng(seed)
        digits = load_digits()
        by_digit = [np.flatnonzero(digits.target == d) for d in range(10)]
        class_ids = np.arange(num_classes)
        minority_classes = rng.choice(class_ids, size=round(minority_class_share * num_classes), replace=False)

        self.labels = np.repeat(class_ids, samples_per_class).astype(np.int64)
        tens, units = self.labels // 10, self.labels % 10
        picks = np.stack([[rng.choice(by_digit[t]) for t in tens], [rng.choice(by_digit[u]) for u in units]], axis=1)
        style = np.isin(self.labels, minority_classes).astype(np.int64)
        self.images = _render(digits.images[picks], style.astype(bool), rng, image_size, minority_style)
        self.attributes = style[:, None]
        self.attribute_names = ("style",)
        self.attribute_values = (STYLES,)
        self.class_names = [f"{c:02d}" for c in class_ids]

    def load_image(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index], mode="RGB")
