"""Shared safe image loading: RGB conversion, errors that name the file, the cheap readability check."""

from __future__ import annotations

import pytest
from helpers.fixtures_datasets import write_garbage, write_jpeg
from PIL import Image

from fairdml.data.imageio import ImageReadError, encode, load_rgb, natural_order, unreadable_reason


def test_load_rgb_converts_grayscale_and_palette(tmp_path):
    Image.new("L", (5, 4), 128).save(tmp_path / "gray.png")
    Image.new("P", (5, 4), 3).save(tmp_path / "palette.png")
    for name in ("gray.png", "palette.png"):
        image = load_rgb(tmp_path / name)
        assert image.mode == "RGB" and image.size == (5, 4)


def test_bad_files_name_the_file(tmp_path):
    write_garbage(tmp_path / "garbage.jpg")
    write_jpeg(tmp_path / "whole.jpg", seed=0, size=64)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    for name in ("garbage.jpg", "missing.jpg", "truncated.jpg"):
        with pytest.raises(ImageReadError, match=name):
            load_rgb(tmp_path / name)
    assert unreadable_reason(tmp_path / "whole.jpg") is None
    assert unreadable_reason(tmp_path / "missing.jpg") == "missing"
    assert unreadable_reason(tmp_path / "garbage.jpg").startswith("unreadable")
    # The cheap header check lets a truncated body through; load_rgb still fails naming it (documented).
    assert unreadable_reason(tmp_path / "truncated.jpg") is None


def test_codes_follow_natural_order():
    assert natural_order(["10", "2", "1"]) == ["1", "2", "10"]
    codes, names = encode(["b", "a", "b"])
    assert names == ("a", "b") and codes.tolist() == [1, 0, 1]
