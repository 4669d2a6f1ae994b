"""LightningDataModule: dataset → class-disjoint splits → training imbalance → loaders."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision.transforms import v2

from fairdml.config import DataConfig
from fairdml.config_keywords import Keywords, keyword_config
from fairdml.data.base import DatasetView, DMLDataset
from fairdml.data.decoded_cache import CROP_SCALE, DecodedImages, DecodedView, build_decoded_cache
from fairdml.data.device_augment import finish_images
from fairdml.data.intersections import select_group_attribute
from fairdml.data.registry import create_dataset
from fairdml.data.samplers import ClassBalancedBatchSampler
from fairdml.data.splits import class_disjoint_split, impose_minority_share, minority_group_code


def build_transforms(cfg: DataConfig, train: bool) -> v2.Compose:
    steps: list[Any] = [v2.PILToTensor()]
    if train and cfg.augment:
        steps.append(v2.RandomResizedCrop(cfg.image_size, scale=CROP_SCALE, antialias=True))
        if cfg.hflip:
            steps.append(v2.RandomHorizontalFlip())
    else:
        steps += [v2.Resize(cfg.image_size, antialias=True), v2.CenterCrop(cfg.image_size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.mean), list(cfg.std))]
    return v2.Compose(steps)


# DMLDataModule's keyword settings: the keys of the `data` block (`DataConfig`), by their own names.
DATA_KEYWORDS = Keywords(
    owner="DMLDataModule",
    keys={item.name: f"data.{item.name}" for item in dataclasses.fields(DataConfig)},
    presets={"name": "data"},
    merged=frozenset({"options"}),
)


class DMLDataModule(L.LightningDataModule):
    """Splits by class, under-represents the minority in training only, and batches m samples per class.

    `group_attribute` (the config's `sensitive_attribute`, or "A|B" when it lists attributes to cross) names
    the groups that metrics compare; `group_names[code]` is each group's name ("A=1|B=0" when crossed).

    Args:
        cfg: the `data` block of a training config (`fairdml.config.DataConfig`); None: the default one
            (`compose_config([]).data`) with `settings` applied.
        seed: seeds the split, the imbalance and the sampler.
        dataset: a dataset object to use instead of building `cfg.name` from the registry.
        **settings: without `cfg`: any key of the data block by name (`batch_size=32`, `minority_share=0.2`,
            ...); `name` picks a configs/data preset (or a registered dataset, with the schema's defaults), and
            `options` (the dataset's keyword arguments) merge into the preset's.

    Raises:
        ValueError: one line, for an unknown keyword (naming the closest one) or a value out of range.

    Example:
        >>> from fairdml.config import compose_config
        >>> datamodule = DMLDataModule(compose_config([]).data, seed=0)
        >>> datamodule.setup()
        >>> sorted(datamodule.views), datamodule.group_attribute, datamodule.group_names
        (['test', 'train', 'val'], 'style', ['majority', 'minority'])
        >>> small = DMLDataModule(options={"num_classes": 20, "samples_per_class": 8}, batch_size=16)
        >>> small.cfg.batch_size, small.cfg.options.num_classes, small.cfg.options.samples_per_class
        (16, 20, 8)
    """

    def __init__(
        self,
        cfg: DataConfig | DictConfig | None = None,
        seed: int = 0,
        dataset: DMLDataset | None = None,
        **settings: Any,
    ):
        if cfg is not None and settings:
            raise TypeError(
                f"DMLDataModule takes a data config or keyword settings, not both (got cfg and {sorted(settings)})"
            )
        if cfg is None:
            cfg = keyword_config(DATA_KEYWORDS, settings).data
        super().__init__()
        self.cfg, self.seed = cfg, seed
        self._dataset = dataset
        self.views: dict[str, DatasetView] = {}
        self._train_sampler: ClassBalancedBatchSampler | None = None
        self._sampler_state_to_load: dict | None = None
        # Extension point for mitigations (fairdml.callbacks.GroupBalancedSampling sets it in `setup`):
        # each training batch takes as many classes from every group.
        self.group_balanced = False
        self._cache_folder: Path | None = None  # data.decoded_cache's folder, once known

    # -- setup -------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.views:
            return
        cfg = self.cfg
        if self._dataset is None:
            options = dict(cfg.options)
            if cfg.root is not None:
                options["root"] = cfg.root
            self._dataset = create_dataset(cfg.name, **options)
        dataset = self._dataset
        self.group_attribute = select_group_attribute(dataset, cfg.sensitive_attribute)
        groups = dataset.attribute_column(self.group_attribute)
        self.group_names = list(dataset.attribute_values[dataset.attribute_names.index(self.group_attribute)])
        splits = class_disjoint_split(
            dataset.labels, dict(cfg.split), self.seed, groups=groups, class_split=cfg.class_split
        )
        if "train" not in splits:
            raise ValueError(f"data.split needs a 'train' entry, got {list(splits)}")
        self.minority_code = minority_group_code(
            self.group_names, groups[splits["train"]], cfg.minority_group, self.group_attribute
        )
        if cfg.minority_share is not None:
            splits["train"] = impose_minority_share(
                splits["train"], groups, self.minority_code, cfg.minority_share, self.seed,
                labels=dataset.labels, by=cfg.imbalance_by,
            )  # fmt: skip
        for name, indices in splits.items():
            self.views[name] = DatasetView(dataset, indices, build_transforms(cfg, train=name == "train"))

    # -- loaders -----------------------------------------------------------------------------------
    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader_kwargs(self) -> dict:
        cfg = self.cfg
        return {
            "num_workers": cfg.num_workers,
            "pin_memory": cfg.pin_memory,
            "persistent_workers": cfg.persistent_workers and cfg.num_workers > 0,
        }

    def train_sampler(self) -> ClassBalancedBatchSampler:
        view = self.views["train"]
        world_size, rank = self._world()
        return ClassBalancedBatchSampler(
            view.labels, self.cfg.batch_size, self.cfg.samples_per_class, seed=self.seed,
            num_replicas=world_size, rank=rank,
            groups=view.attribute_column(self.group_attribute),
            group_balanced=self.group_balanced,
        )  # fmt: skip

    def prepare_data(self) -> None:
        """Build the decoded cache (`data.decoded_cache`) once per node, before any process reads it."""
        if self.cfg.decoded_cache:
            self._decoded_cache_folder()

    def _decoded_cache_folder(self) -> Path:
        """Built (or found) once per data module: the fingerprint stats every image file."""
        if self._cache_folder is None:
            self.setup()
            cache_dir = Path(self.cfg.decoded_cache_dir).expanduser() if self.cfg.decoded_cache_dir else None
            base = self.views["train"].base
            self._cache_folder = build_decoded_cache(base, self.cfg.image_size, cache_dir, self.cfg.num_workers)
        return self._cache_folder

    def train_dataset(self) -> Dataset:
        """The training split as the loader reads it: decoded images, or the cache's slots and crop boxes."""
        view = self.views["train"]
        if not self.cfg.decoded_cache:
            return view
        images = DecodedImages.open(self._decoded_cache_folder())
        cfg = self.cfg
        return DecodedView(view, images, cfg.image_size, augment=cfg.augment, hflip=cfg.augment and cfg.hflip)

    def train_dataloader(self) -> DataLoader:
        self._train_sampler = self.train_sampler()
        if self._sampler_state_to_load is not None:  # a resumed run continues the sampler where it stood
            self._train_sampler.load_state_dict(self._sampler_state_to_load)
            self._sampler_state_to_load = None
        return DataLoader(self.train_dataset(), batch_sampler=self._train_sampler, **self._loader_kwargs())

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """A decoded-cache batch (uint8 slots + crop boxes) becomes images here, on the device, in one go."""
        if isinstance(batch, dict) and "crop" in batch:
            pixels, crops, flips = batch.pop("image"), batch.pop("crop"), batch.pop("flip")
            batch["image"] = finish_images(pixels, crops, flips, self.cfg.image_size, self.cfg.mean, self.cfg.std)
        return batch

    # -- checkpointed state --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The training sampler's epoch and position, saved in every checkpoint.

        The position is the number of batches the trainer has *trained on* this epoch, not the sampler's
        own count, which runs ahead by the batches the loader has prefetched.
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None or self._train_sampler is None:
            return {}
        state = self._train_sampler.state_dict()
        completed = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if completed >= len(self._train_sampler):  # the epoch is over: the next one starts at its beginning
            state.update(epoch=trainer.current_epoch + 1, position=0)
        else:
            state.update(epoch=trainer.current_epoch, position=completed)
        return {"train_sampler": state}

    def load_state_dict(self, state_dict: dict) -> None:
        state = state_dict.get("train_sampler")
        if state is not None and self._train_sampler is not None:
            # The loader may exist already: Lightning builds it to count the steps before restoring.
            self._train_sampler.load_state_dict(state)
        else:
            self._sampler_state_to_load = state

    def _eval_loader(self, split: str) -> DataLoader:
        if split not in self.views:
            raise ValueError(f"no '{split}' split; data.split has {list(self.views)}")
        view, (world_size, rank) = self.views[split], self._world()
        # Padded shards repeat samples; the metric drops them by `index`.
        sampler = DistributedSampler(view, world_size, rank, shuffle=False) if world_size > 1 else None
        return DataLoader(
            view, batch_size=self.cfg.eval_batch_size, sampler=sampler, shuffle=False, **self._loader_kwargs()
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    # -- description -------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Counts per split, for data_summary.json and the model card's datasheet section."""
        out: dict[str, Any] = {
            "dataset": self.cfg.name,
            "group_attribute": self.group_attribute,
            "group_names": self.group_names,
            "minority_group": self.group_names[self.minority_code],
            "requested_minority_share": self.cfg.minority_share,
            "imbalance_by": self.cfg.imbalance_by,
            "splits": {},
        }
        for split, view in self.views.items():
            groups = view.attribute_column(self.group_attribute)
            per_group = {}
            for code, name in enumerate(self.group_names):
                mask = groups == code
                images_per_class = Counter(view.labels[mask].tolist())
                per_group[name] = {
                    "n": int(mask.sum()),
                    "classes": len(images_per_class),
                    "images_per_class_mean": float(np.mean(list(images_per_class.values())))
                    if images_per_class
                    else 0.0,
                }
            counts = [g["n"] for g in per_group.values() if g["n"] > 0]
            out["splits"][split] = {
                "n": len(view),
                "classes": int(len(np.unique(view.labels))),
                "groups": per_group,
                "minority_share": per_group[self.group_names[self.minority_code]]["n"] / max(len(view), 1),
                "imbalance_ratio": max(counts) / min(counts) if counts else None,
            }
        return out
