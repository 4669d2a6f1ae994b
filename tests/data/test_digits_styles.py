"""The embedded digits' minority styles: the same classes and scans, the attribute written everywhere (global),
in the strokes only, or in a small mark."""

from __future__ import annotations

import numpy as np
import pytest

from fairdml.data.digits import MARK_FRACTION, ComposedDigits


@pytest.fixture(scope="module")
def variants():
    options = {"samples_per_class": 4, "num_classes": 20}
    return {style: ComposedDigits(minority_style=style, **options) for style in ("global", "strokes", "mark")}


def test_only_the_minority_changes_and_only_where_the_style_says(variants):
    base, strokes, mark = variants["global"], variants["strokes"], variants["mark"]
    minority = base.attributes[:, 0] == 1
    for variant in (strokes, mark):
        np.testing.assert_array_equal(variant.labels, base.labels)
        np.testing.assert_array_equal(variant.attributes, base.attributes)
        np.testing.assert_array_equal(variant.images[~minority], base.images[~minority])
    # mark: the majority's grey look (R = G = B) everywhere but a square in the top-left corner.
    side = round(MARK_FRACTION * 32)
    outside = np.ones((32, 32), dtype=bool)
    outside[:side, :side] = False
    marked = mark.images[minority]
    assert (marked[:, outside].max(axis=-1) == marked[:, outside].min(axis=-1)).all()
    assert (marked[:, :side, :side] == [255, 204, 0]).all()
    # strokes: black exactly where the majority-style rendering of the same scans is, with coloured ink.
    tinted = strokes.images[minority]
    np.testing.assert_array_equal(tinted[:, outside].max(axis=-1) == 0, marked[:, outside].max(axis=-1) == 0)
    ink = tinted.max(axis=-1) > 0
    assert (tinted[..., 0][ink] > tinted[..., 2][ink]).all()  # orange: red above blue, the ink only
    assert (base.images[minority].min(axis=-1) > 0).mean() > 0.9  # global: the background is light and textured


def test_unknown_style_is_named():
    with pytest.raises(ValueError, match="minority_style must be one of"):
        ComposedDigits(minority_style="stripes")
