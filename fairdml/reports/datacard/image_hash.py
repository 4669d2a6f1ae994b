"""Perceptual hashes for near-duplicate images, on metadata-free access to the image files.

A 64-bit difference hash (dHash), written by hand with PIL + NumPy rather than a dependency: the image as a
9x8 greyscale thumbnail, one bit per horizontal neighbour pair (left brighter than right). Re-encoding,
resizing and small colour shifts keep most bits, so a small Hamming distance flags a likely duplicate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def _open(source: Any, index: int) -> Image.Image:
    """The image of sample `index`, opened lazily from its file when the dataset has files."""
    image_path = getattr(source, "image_path", None)
    return source.load_image(index) if image_path is None else Image.open(Path(image_path(index)))


def difference_hash(image: Image.Image) -> np.uint64:
    """64-bit dHash: bit i is set when pixel (r, c) of the 9x8 grey thumbnail is brighter than (r, c+1)."""
    pixels = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = np.packbits(pixels[:, :-1] > pixels[:, 1:])  # 8 bytes, most significant bit first
    return bits.view(">u8")[0].astype(np.uint64)


def hash_images(dataset: Any, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K,) uint64 dHashes and (K, 2) int64 (width, height) of the dataset's samples `indices`.

    One lazy open per image: the size comes from the header, then a JPEG decodes at a reduced scale.
    """
    hashes = np.empty(len(indices), dtype=np.uint64)
    sizes = np.empty((len(indices), 2), dtype=np.int64)
    for position, index in enumerate(indices):
        with _open(dataset, int(index)) as image:
            sizes[position] = image.size
            image.draft("L", (64, 64))  # no-op for non-JPEG; the hash needs 9x8 pixels only
            hashes[position] = difference_hash(image)
    return hashes, sizes


def close_pairs(hashes_a: np.ndarray, hashes_b: np.ndarray, max_distance: int, chunk: int = 2048) -> np.ndarray:
    """(P, 3) int64 rows (i, j, Hamming distance) of every pair with distance <= max_distance.

    Chunked over `hashes_a` so memory stays (chunk x len(hashes_b)).
    """
    found = [np.empty((0, 3), dtype=np.int64)]
    for start in range(0, len(hashes_a), chunk):
        block = hashes_a[start : start + chunk, None] ^ hashes_b[None, :]
        distance = np.bitwise_count(block).astype(np.int64)
        i, j = np.nonzero(distance <= max_distance)
        found.append(np.stack([i + start, j, distance[i, j]], axis=1))
    return np.concatenate(found)
