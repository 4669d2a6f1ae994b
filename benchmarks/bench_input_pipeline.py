"""Images per second of the training input pipeline on this machine's CPU.

Pipeline: JPEG decode -> RandomResizedCrop(224) -> horizontal flip -> float + normalize, batched by a
DataLoader with 0/1/2 workers. Decoders: PIL (what the readers' `load_image` does, then PILToTensor as
fairdml's datamodule does) vs `torchvision.io.decode_jpeg` on CPU (bytes straight to a uint8 tensor).
Images: generated 250x250 JPEGs (the size of LFW and aligned CelebA), smooth like photos, not noise.

    .venv/bin/python benchmarks/bench_input_pipeline.py --num-images 384 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms import v2

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_images(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """Photo-like JPEGs: upsampled low-resolution colour noise plus mild grain, quality 90."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(
            (size, size), Image.BICUBIC
        )
        pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (size, size, 3))
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def augment(image_size: int) -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )


class JpegFiles(Dataset):
    """Decodes with PIL (open + convert RGB + PILToTensor) or with torchvision.io.decode_jpeg."""

    def __init__(self, paths: list[Path], decoder: str, image_size: int):
        self.paths, self.decoder, self.transform = [str(p) for p in paths], decoder, augment(image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, path: str) -> torch.Tensor:
        if self.decoder == "pil":
            with Image.open(path) as image:
                return v2.functional.pil_to_tensor(image.convert("RGB"))
        return decode_jpeg(read_file(path), mode=ImageReadMode.RGB)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.decode(self.paths[index]))


def images_per_second(paths: list[Path], decoder: str, workers: int, batch_size: int, repeats: int) -> float:
    """Best of `repeats` full passes (the machine is shared; the best pass is the least disturbed)."""
    loader = DataLoader(
        JpegFiles(paths, decoder, 224),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    next(iter(loader))  # start workers and warm caches outside the timing
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        count = sum(len(batch) for batch in loader)
        best = max(best, count / (time.perf_counter() - start))
    return best


def stage_milliseconds(paths: list[Path], repeats: int) -> dict[str, float]:
    """Per-image cost of each stage alone, in one process (best of `repeats`): what dominates."""
    dataset = {name: JpegFiles(paths, name, 224) for name in ("pil", "decode_jpeg")}
    decoded = decode_jpeg(read_file(str(paths[0])), mode=ImageReadMode.RGB)
    crop_flip = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip()])
    to_float = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    cropped = crop_flip(decoded)
    stages = {
        "PIL decode + RGB + to tensor": lambda p: dataset["pil"].decode(str(p)),
        "torchvision decode_jpeg (CPU)": lambda p: dataset["decode_jpeg"].decode(str(p)),
        "RandomResizedCrop 224 + flip (uint8)": lambda p: crop_flip(decoded),
        "to float + normalize (224 px)": lambda p: to_float(cropped),
    }
    best = {}
    for name, stage in stages.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for path in paths:
                stage(path)
            times.append((time.perf_counter() - start) / len(paths) * 1e3)
        best[name] = min(times)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=384)
    parser.add_argument("--image-size", type=int, default=250, help="side of the generated JPEGs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)  # DataLoader workers use 1 thread each; match it in the main process
    cpu = platform.processor() or platform.machine()
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, {cpu}, {os.cpu_count()} CPU(s), "
        f"torch threads {torch.get_num_threads()}, no GPU used, load average before {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as folder:
        paths = write_images(Path(folder), args.num_images, args.image_size)
        stages = stage_milliseconds(paths, args.repeats)
        results = {}
        for decoder in ("pil", "decode_jpeg"):
            for workers in args.workers:
                results[decoder, workers] = images_per_second(
                    paths, decoder, workers, args.batch_size, args.repeats
                )
    baseline = results.get(("pil", 0)) or next(iter(results.values()))
    print(
        f"\n{args.num_images} JPEGs {args.image_size}x{args.image_size} -> RandomResizedCrop 224 + flip + "
        f"normalize, batch {args.batch_size}, best of {args.repeats}\n"
    )
    print("| decoder | workers | images/s | vs PIL, 0 workers |")
    print("|---|---:|---:|---:|")
    for (decoder, workers), rate in results.items():
        print(f"| {decoder} | {workers} | {rate:.0f} | {rate / baseline:.2f}x |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f} (the machine is shared: compare ratios)")
    print("\n| stage (one process) | ms per image |\n|---|---:|")
    for name, milliseconds in stages.items():
        print(f"| {name} | {milliseconds:.2f} |")


if __name__ == "__main__":
    main()
