"""Perceptual hashes for near-duplicate images, on metadata-free access to the image files.

A 64-bit difference hash (dHash), written by hand with PIL + NumPy rather than a dependency: the image as a
9x8 greyscale thumbnail, one bit per horizontal neighbour pair (left brighter than right). Re-encoding,
resizing and small colour shifts keep most bits, so a small Hamming distance flags a *candidate*. On small
images with flat backgrounds (the embedded 32-px digits) distinct images share most bits too, so a candidate
counts as a near-duplicate only when a 16x16 greyscale thumbnail confirms it (`confirmed_pairs`).
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


THUMBNAIL = 16  # side of the greyscale thumbnail that confirms a hash candidate
MAX_THUMBNAIL_DIFFERENCE = 0.03  # mean absolute difference in [0, 1]; distinct 32-px digits differ by ~0.08


def hash_images(dataset: Any, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K,) uint64 dHashes, (K, 2) int64 (width, height) and (K, 16, 16) float32 grey thumbnails in [0, 1]
    of the dataset's samples `indices`.

    One lazy open per image: the size comes from the header, then a JPEG decodes at a reduced scale.
    """
    hashes = np.empty(len(indices), dtype=np.uint64)
    sizes = np.empty((len(indices), 2), dtype=np.int64)
    thumbnails = np.empty((len(indices), THUMBNAIL, THUMBNAIL), dtype=np.float32)
    for position, index in enumerate(indices):
        with _open(dataset, int(index)) as image:
            sizes[position] = image.size
            image.draft("L", (64, 64))  # no-op for non-JPEG; hash and thumbnail need 16x16 pixels at most
            grey = image.convert("L")  # once, for the hash and the thumbnail
            hashes[position] = difference_hash(grey)
            thumbnail = grey.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR)
            thumbnails[position] = np.asarray(thumbnail, dtype=np.float32) / 255.0
    return hashes, sizes, thumbnails


def confirmed_pairs(pairs: np.ndarray, thumbnails_a: np.ndarray, thumbnails_b: np.ndarray) -> np.ndarray:
    """The rows of `close_pairs` whose thumbnails differ by at most MAX_THUMBNAIL_DIFFERENCE (mean, absolute)."""
    keep = np.zeros(len(pairs), dtype=bool)
    for start in range(0, len(pairs), 8192):  # bounded memory: 8192 pairs x 256 pixels at a time
        block = pairs[start : start + 8192]
        difference = np.abs(thumbnails_a[block[:, 0]] - thumbnails_b[block[:, 1]]).mean(axis=(1, 2))
        keep[start : start + 8192] = difference <= MAX_THUMBNAIL_DIFFERENCE
    return pairs[keep]


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
