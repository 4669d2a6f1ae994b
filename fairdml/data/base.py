"""The dataset interface every fairdml dataset implements (embedded digits, CelebA, LFW, CUB, folder+CSV).

A dataset knows, without decoding any image, each sample's class label and sensitive attribute(s), so that
splits, imbalance and samplers work on metadata alone. Images are decoded lazily in `load_image`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


class DMLDataset(Dataset, ABC):
    """Image, class label and sensitive attributes per sample.

    Subclasses set in `__init__`:
      labels            (N,) int64 class ids (contiguous or not; splits are by class)
      attributes        (N, A) int64 codes of the A sensitive attributes
      attribute_names   A names, e.g. ("skin_tone",)
      attribute_values  for each attribute, the names of its codes, e.g. (("light", "dark"),)
    and implement `load_image(i)`. `__getitem__` returns a dict so batches are self-describing.
    """

    labels: np.ndarray
    attributes: np.ndarray
    attribute_names: tuple[str, ...]
    attribute_values: tuple[tuple[str, ...], ...]
    transform: Callable | None = None

    @abstractmethod
    def load_image(self, index: int) -> Image.Image:
        """Decode sample `index` as an RGB PIL image; raise an error naming the file if it cannot."""

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return _item(self, self.load_image(index), index)

    def attribute_column(self, name: str) -> np.ndarray:
        """The (N,) codes of one sensitive attribute, by name, with an error listing the valid names."""
        if name not in self.attribute_names:
            raise KeyError(f"unknown sensitive attribute {name!r}; this dataset has {list(self.attribute_names)}")
        return self.attributes[:, self.attribute_names.index(name)]


class DatasetView(Dataset):
    """A subset of a DMLDataset that keeps its metadata and its own transform.

    `index` in each item is the position within this view, so evaluation under DDP can drop the
    duplicated samples that a distributed sampler pads the last shard with.
    """

    def __init__(self, base: DMLDataset, indices: Sequence[int], transform: Callable | None = None):
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.labels = base.labels[self.indices]
        self.attributes = base.attributes[self.indices]
        self.attribute_names = base.attribute_names
        self.attribute_values = base.attribute_values

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return _item(self, self.base.load_image(int(self.indices[index])), index)

    def attribute_column(self, name: str) -> np.ndarray:
        return DMLDataset.attribute_column(self, name)  # type: ignore[arg-type]


def _item(source: DMLDataset | DatasetView, image: Any, index: int) -> dict:
    """One batch item (the contract in docs/architecture.md), the source's transform applied."""
    if source.transform is not None:
        image = source.transform(image)
    return {
        "image": image,
        "label": int(source.labels[index]),
        "attributes": torch.as_tensor(source.attributes[index], dtype=torch.long),
        "index": index,
    }
