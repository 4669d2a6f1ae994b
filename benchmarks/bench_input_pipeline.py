"""CPU cost per training image of fairdml's own loader at 224 px, before and after the decoded cache.

Data: a CelebA-format fixture written here (img_align_celeba/*.jpg at 178x218, the aligned CelebA size, photo-like
JPEGs; identity_CelebA.txt; list_attr_celeba.txt), read by fairdml's CelebA reader through `DMLDataModule`'s
training loader (class-balanced batches, RandomResizedCrop 224 + flip + normalise):
- before: `data.decoded_cache=false`, PIL decode and augmentation per image in the loader;
- after: `data.decoded_cache=true`, the loader slices the uint8 cache and draws crop boxes; the crop, resize,
  flip and normalisation run on the device in batches (`finish_images`), timed apart (on the CPU here; on a
  GPU it is GPU time, not CPU time).
CPU time is the process's (`time.process_time`), one thread, no workers: per image it is what one core spends,
whatever else the machine runs. Images/s per core = 1000 / ms.

    .venv/bin/python benchmarks/bench_input_pipeline.py --identities 100 --images-per-identity 4 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fairdml.config import compose_config
from fairdml.data.datamodule import DMLDataModule

_HEADER = (  # list_attr_celeba.txt's second line, as published
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
)
CELEBA_ATTRIBUTES = _HEADER.split()


def write_celeba(root: Path, identities: int, per_identity: int, seed: int = 0) -> None:
    """Aligned-CelebA-sized photo-like JPEGs (upsampled colour noise plus grain, quality 90) and the text files."""
    rng = np.random.default_rng(seed)
    (root / "img_align_celeba").mkdir(parents=True)
    files, people = [], []
    for i in range(identities * per_identity):
        coarse = Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).resize((178, 218), Image.BICUBIC)
        pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (218, 178, 3))
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / "img_align_celeba" / name, quality=90)
        files.append(name)
        people.append(i // per_identity + 1)
    (root / "identity_CelebA.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, people)))
    values = rng.choice([-1, 1], size=(len(files), len(CELEBA_ATTRIBUTES)))
    values[:, CELEBA_ATTRIBUTES.index("Male")] = [1 if p % 3 else -1 for p in people]
    lines = [str(len(files)), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [f + " " + " ".join(f"{v:>2d}" for v in row) for f, row in zip(files, values)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")


def datamodule(root: Path, cache: Path | None, image_size: int, batch_size: int) -> DMLDataModule:
    overrides = [
        "data=celeba", f"data.root={root}", "data.options.sensitive_attributes=[Male]", "data.minority_share=null",
        f"data.image_size={image_size}", f"data.batch_size={batch_size}", "data.samples_per_class=4",
        "data.split={train: 0.8, val: 0.1, test: 0.1}", "data.hflip=true",
        f"data.decoded_cache={cache is not None}", f"data.decoded_cache_dir={cache or 'null'}",
    ]  # fmt: skip
    module = DMLDataModule(compose_config(overrides).data, seed=0)
    module.setup()
    return module


def cpu_ms_per_image(module: DMLDataModule, repeats: int, device: torch.device) -> tuple[float, float]:
    """(loader CPU ms per image, device-stage ms per image), best of `repeats` passes over the training split.
    The device stage is timed on the wall clock around a synchronised device (on the CPU, its CPU time)."""
    best_loader, best_device = float("inf"), float("inf")
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(repeats):
        loader, count, loader_s, device_s = module.train_dataloader(), 0, 0.0, 0.0
        iterator = iter(loader)
        while True:
            start = time.process_time()
            batch = next(iterator, None)
            loader_s += time.process_time() - start
            if batch is None:
                break
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            sync()
            start = clock()
            batch = module.on_after_batch_transfer(batch, 0)
            sync()
            device_s += clock() - start
            assert batch["image"].shape[-1] == module.cfg.image_size and batch["image"].dtype == torch.float32
            count += len(batch["label"])
        best_loader, best_device = min(best_loader, loader_s / count * 1e3), min(best_device, device_s / count * 1e3)
    return best_loader, best_device


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=100)
    parser.add_argument("--images-per-identity", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="where the device stage runs (cpu, cuda)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(1)
    lines = [
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
        f"1 torch thread, 0 workers, load average before {os.getloadavg()[0]:.1f}",
    ]
    with tempfile.TemporaryDirectory() as folder:
        root, cache = Path(folder) / "celeba", Path(folder) / "cache"
        write_celeba(root, args.identities, args.images_per_identity)
        before = datamodule(root, None, args.image_size, args.batch_size)
        pil_ms, _ = cpu_ms_per_image(before, args.repeats, device)
        after = datamodule(root, cache, args.image_size, args.batch_size)
        start = time.process_time()
        after.prepare_data()  # the one-time decode into the cache
        build_ms = (time.process_time() - start) / len(after.views["train"].base) * 1e3
        cached_ms, device_ms = cpu_ms_per_image(after, args.repeats, device)
    n = args.identities * args.images_per_identity
    lines += [
        f"\n{n} CelebA-format JPEGs 178x218 -> RandomResizedCrop {args.image_size} + flip + normalise, "
        f"batch {args.batch_size}, best of {args.repeats}\n",
        "| path | CPU ms per image | images/s per core | vs before |",
        "|---|---:|---:|---:|",
        f"| before: PIL decode + augment in the loader | {pil_ms:.3f} | {1000 / pil_ms:.0f} | 1.00x |",
        f"| after: decoded cache, loader only | {cached_ms:.3f} | {1000 / cached_ms:.0f} | {pil_ms / cached_ms:.1f}x |",
        f"| after: device stage (crop/resize/flip/normalise) on {device} | {device_ms:.3f} | - | "
        f"{'CPU time' if device.type == 'cpu' else 'GPU time, not CPU'} |",
        f"| after: cache build, once per dataset and size | {build_ms:.3f} | - | one-time |",
        f"\nload average after: {os.getloadavg()[0]:.1f}",
    ]
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
