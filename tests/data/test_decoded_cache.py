"""The decoded-cache loader (data.decoded_cache=true) against the PIL path it replaces in training: the same
pixels for the same crop, the same distribution of augmented batches, a cache built once and never stale."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from helpers.fixtures_datasets import write_celeba, write_jpeg, write_two_attribute_celeba
from helpers.tiny import TINY_OVERRIDES
from PIL import Image
from scipy.stats import ks_2samp
from torchvision.transforms import v2

from fairdml.config import compose_config
from fairdml.data.base import DatasetView, DMLDataset
from fairdml.data.celeba import CelebA
from fairdml.data.datamodule import DMLDataModule, build_transforms
from fairdml.data.decoded_cache import DecodedImages, DecodedView, build_decoded_cache, cache_side
from fairdml.data.device_augment import finish_images
from fairdml.train import run_training

IMAGE_SIZE = 32
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class Photos(DMLDataset):
    """Smooth, non-square images (as photos are), some larger than the cache's slot (they are shrunk)."""

    def __init__(self, sizes: list[tuple[int, int]], seed: int = 0):
        rng = np.random.default_rng(seed)
        self.images = []
        for width, height in sizes:
            coarse = Image.fromarray(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8))
            self.images.append(coarse.resize((width, height), Image.BICUBIC))
        self.labels = np.arange(len(sizes)) // 2
        self.attributes = (self.labels % 2)[:, None]
        self.attribute_names, self.attribute_values = ("style",), (("a", "b"),)

    def load_image(self, index: int) -> Image.Image:
        return self.images[index]


def _config(**data):
    cfg = compose_config([f"data.image_size={IMAGE_SIZE}", "data.hflip=true"]).data
    for key, value in {"mean": MEAN, "std": STD, **data}.items():
        cfg[key] = value
    return cfg


def _cached_view(dataset: DMLDataset, tmp_path, augment: bool = True) -> DecodedView:
    view = DatasetView(dataset, np.arange(len(dataset)))
    images = DecodedImages.open(build_decoded_cache(dataset, IMAGE_SIZE, tmp_path))
    return DecodedView(view, images, IMAGE_SIZE, augment=augment, hflip=True)


@pytest.mark.parametrize("size", [(30, 37), (37, 25), (39, 39)])  # (width, height), within the 39 px slot
@pytest.mark.parametrize("box", [(0, 0, 25, 24), (3, 5, 20, 26), (1, 2, 24, 24)])  # (top, left, h, w)
def test_same_crop_gives_the_pil_path_image(tmp_path, size, box):
    dataset = Photos([size])
    top, left, height, width = box
    height, width = min(height, size[1] - top), min(width, size[0] - left)
    reference = v2.functional.resized_crop(
        v2.functional.pil_to_tensor(dataset.load_image(0)), top, left, height, width, [IMAGE_SIZE, IMAGE_SIZE],
        antialias=True,
    ).float()  # fmt: skip
    pixels = torch.from_numpy(np.array(DecodedImages.open(build_decoded_cache(dataset, IMAGE_SIZE, tmp_path)).pixels))
    crops = torch.tensor([[top, left, top + height, left + width]], dtype=torch.float32)
    for flip in (False, True):
        got = finish_images(pixels, crops, torch.tensor([flip]), IMAGE_SIZE, [0, 0, 0], [1 / 255] * 3)[0]
        expected = reference.flip(-1) if flip else reference
        difference = (got - expected).abs()
        # Bilinear both ways, but roi_align averages 2x2 samples per output pixel and, on a crop's inner edge,
        # reads the neighbouring pixels that crop-then-resize has cut away: the border row and column differ
        # by a gradient's step, the rest by a grey level or two.
        inner = difference[:, 1:-1, 1:-1]
        assert inner.mean() < 1.0 and inner.max() < 8, (inner.mean(), inner.max())
        assert difference.mean() < 1.5, difference.mean()


def test_cached_slots_hold_the_decoded_pixels_and_shrink_large_images(tmp_path):
    dataset = Photos([(30, 37), (80, 50)])
    images = DecodedImages.open(build_decoded_cache(dataset, IMAGE_SIZE, tmp_path))
    side = cache_side(IMAGE_SIZE)
    assert images.pixels.shape == (2, 3, side, side) and side == 39
    assert images.sizes.tolist() == [[37, 30], [24, 39]]  # (h, w): the small one as is, the large to fit
    small = np.asarray(dataset.load_image(0)).transpose(2, 0, 1)
    assert np.array_equal(images.pixels[0, :, :37, :30], small)  # exact: decoded once, stored as uint8
    assert (images.pixels[0, :, :37, 30:] == small[:, :, -1:]).all()  # the last column repeated, then the row
    assert (images.pixels[0, :, 37:, :] == images.pixels[0, :, 36:37, :]).all()


def test_augmented_batches_match_the_pil_path_in_distribution(tmp_path):
    """Many augmentations of the same images, drawn by each path: per-image mean, spread and left-right balance
    follow the same distributions (two-sample KS tests), and the channel statistics agree."""
    dataset = Photos([(30, 37), (37, 25), (39, 39), (28, 36)] * 2, seed=1)
    old = DatasetView(dataset, np.arange(len(dataset)), build_transforms(_config(), train=True))
    new = _cached_view(dataset, tmp_path)
    torch.manual_seed(0)
    draws = 150
    old_images = torch.stack([old[i % len(old)]["image"] for i in range(draws * len(old))])
    items = [new[i % len(new)] for i in range(draws * len(new))]
    new_images = finish_images(
        torch.stack([item["image"] for item in items]), torch.stack([item["crop"] for item in items]),
        torch.stack([item["flip"] for item in items]), IMAGE_SIZE, MEAN, STD,
    )  # fmt: skip
    assert new_images.shape == old_images.shape
    for statistic in (
        lambda x: x.mean(dim=(1, 2, 3)),
        lambda x: x.std(dim=(1, 2, 3)),
        lambda x: x[..., : IMAGE_SIZE // 2].mean(dim=(1, 2, 3)) - x[..., IMAGE_SIZE // 2 :].mean(dim=(1, 2, 3)),
    ):
        assert ks_2samp(statistic(old_images).numpy(), statistic(new_images).numpy()).pvalue > 0.01
    for dims in ((0, 2, 3),):
        assert torch.allclose(old_images.mean(dim=dims), new_images.mean(dim=dims), atol=0.03)
        assert torch.allclose(old_images.std(dim=dims), new_images.std(dim=dims), rtol=0.03)


def test_without_augmentation_the_cache_gives_the_evaluation_crop(tmp_path):
    dataset = Photos([(30, 37), (37, 25)])
    old = DatasetView(dataset, np.arange(2), build_transforms(_config(), train=False))
    new = _cached_view(dataset, tmp_path, augment=False)
    for index in range(2):
        item = new[index]
        got = finish_images(item["image"][None], item["crop"][None], item["flip"][None], IMAGE_SIZE, MEAN, STD)[0]
        difference = (got - old[index]["image"]).abs() * torch.tensor(STD)[:, None, None] * 255  # grey levels
        assert difference[:, 1:-1, 1:-1].mean() < 1.0 and difference.mean() < 1.5, difference.mean()


def test_cache_is_built_once_and_rebuilt_when_a_file_changes(tmp_path):
    write_celeba(tmp_path / "celeba")
    dataset = CelebA(tmp_path / "celeba", sensitive_attributes=["Male"])
    folder = build_decoded_cache(dataset, IMAGE_SIZE, tmp_path / "cache")
    written = (folder / "pixels.npy").stat().st_mtime_ns
    assert build_decoded_cache(dataset, IMAGE_SIZE, tmp_path / "cache") == folder
    assert (folder / "pixels.npy").stat().st_mtime_ns == written  # read, not decoded again
    assert json.loads((folder / "meta.json").read_text())["n"] == len(dataset)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left
    image = tmp_path / "celeba" / "img_align_celeba" / "000001.jpg"
    write_jpeg(image, seed=99)
    os.utime(image, ns=(written + 10**9, written + 10**9))
    changed = CelebA(tmp_path / "celeba", sensitive_attributes=["Male"])
    fresh = build_decoded_cache(changed, IMAGE_SIZE, tmp_path / "cache")
    assert fresh != folder  # a changed file: a new cache, never the stale pixels
    assert build_decoded_cache(dataset, IMAGE_SIZE + 8, tmp_path / "cache") not in (folder, fresh)  # another size


def test_training_reads_the_cache_and_reports_as_before(tmp_path):
    """A bf16 run on a CelebA fixture with the cache: training batches come from it, the run completes, and the
    test report is computed from the PIL path (the cache never reaches evaluation)."""
    root = tmp_path / "celeba"
    write_two_attribute_celeba(root)
    overrides = [
        *(o for o in TINY_OVERRIDES if not o.startswith("data.options.")), "data=celeba", f"data.root={root}",
        "data.options.sensitive_attributes=[Male]", "data.image_size=32", "data.minority_share=null",
        "evaluation.min_group_size=5", "trainer.precision=bf16-mixed", "data.decoded_cache=true",
        f"data.decoded_cache_dir={tmp_path / 'cache'}", f"run_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    cfg = compose_config(overrides)
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    datamodule.setup()
    assert isinstance(datamodule.train_dataset(), DecodedView)
    assert isinstance(datamodule.test_dataloader().dataset, DatasetView)  # evaluation decodes as before
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert batch["image"].shape == (cfg.data.batch_size, 3, 32, 32) and "crop" not in batch
    run_dir = run_training(cfg)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["meta"]["precision"] == "bf16-mixed" and report["n"] == len(datamodule.views["test"])
    assert len(list((tmp_path / "cache").iterdir())) == 1  # built once, by prepare_data
