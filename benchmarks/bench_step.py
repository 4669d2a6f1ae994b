"""Training step rate: a hand-written PyTorch loop vs fairdml's DMLModule in a Lightning Trainer (progress bar
off and on) vs fairdml + PARADE, in one process on the same pre-loaded batches.

All variants share the config (`compose_config([])`: the default tiny model on the embedded digits data,
or `--model resnet18` at 64 px), the model's initial weights, the pytorch-metric-learning loss and miner,
AdamW with the config's learning rates, and the training batches, loaded once into memory (on `--device`).
Lightning runs with `logger=False` and no checkpointing (what the step itself costs, not the CSV/W&B
writers). Time is the process's CPU time on the CPU (robust to other jobs on a shared machine; it equals
the step's work with OMP_NUM_THREADS=1) and wall time on a GPU. The first `--warmup` steps of each run are
not timed; the variants alternate within each repeat and the table gives the median ms/step, the speed
ratio plain_ms / variant_ms and PARADE's overhead over fairdml without it.

    OMP_NUM_THREADS=1 nice python benchmarks/bench_step.py --steps 30 --repeats 5 [--model resnet18] [--device cuda]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from fairdml.callbacks.instantiate import instantiate_callbacks
from fairdml.config import compose_config, to_container
from fairdml.data.datamodule import DMLDataModule
from fairdml.models.module import DMLModule

Batch = dict[str, torch.Tensor]


class PreloadedBatches(L.LightningDataModule):
    """Batches already in memory, served as the training loader; `views` tells PARADE the attributes."""

    def __init__(self, batches: list[Batch], attribute_names: list[str], attribute_values: list[list]):
        super().__init__()
        self.batches = batches
        self.views = {"train": SimpleNamespace(attribute_names=attribute_names, attribute_values=attribute_values)}

    def train_dataloader(self) -> _Loader:
        return _Loader(self.batches)


class _Loader:
    """An iterable of batches (a bare list would be read by Lightning as a list of loaders)."""

    def __init__(self, batches: list[Batch]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):  # noqa: ANN204
        return iter(self.batches)


def clock(device: torch.device) -> Callable[[], float]:
    """Seconds to time steps by: this process's CPU time on the CPU (other jobs on a shared machine do not
    stretch it; run with OMP_NUM_THREADS=1 so that it equals the step's work), wall time on a GPU."""
    return time.perf_counter if device.type == "cuda" else time.process_time


class StepTimer(L.Callback):
    """Time from the start of step `warmup` to the end of the last step (device synchronised)."""

    def __init__(self, warmup: int, device: torch.device):
        self.warmup, self.sync, self.clock = warmup, device_sync(device), clock(device)
        self.start = self.end = 0.0
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.warmup:
            self.sync()
            self.start = self.clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.sync()
        self.end = self.clock()
        self.steps = trainer.global_step - self.warmup


def device_sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def preload(datamodule: DMLDataModule, count: int, device: torch.device) -> list[Batch]:
    """`count` training batches (the loader cycled as needed), moved to `device` once."""

    def endless() -> Iterator[Batch]:
        while True:
            yield from datamodule.train_dataloader()

    batches = list(itertools.islice(endless(), count))
    return [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in b.items()} for b in batches]


def plain_loop_ms(module: DMLModule, batches: list[Batch], warmup: int, device: torch.device) -> float:
    """ms/step of forward, the same PML miner + loss, backward and AdamW step, written by hand."""
    model, loss_fn, miner = (copy.deepcopy(m) for m in (module.model, module.loss, module.miner))
    optim_cfg = module.config["optim"]
    optimizer = torch.optim.AdamW(
        [
            {"params": model.backbone.parameters(), "lr": optim_cfg["backbone_lr"]},
            {"params": model.head.parameters(), "lr": optim_cfg["lr"]},
            {"params": loss_fn.parameters(), "lr": optim_cfg["loss_lr"]},
        ],
        weight_decay=optim_cfg["weight_decay"],
    )
    model.train()
    sync, now = device_sync(device), clock(device)
    start = 0.0
    for index, batch in enumerate(batches):
        if index == warmup:
            sync()
            start = now()
        embeddings = model(batch["image"])
        pairs = miner(embeddings, batch["label"]) if miner is not None else None
        loss = loss_fn(embeddings, batch["label"], pairs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync()
    return 1000 * (now() - start) / (len(batches) - warmup)


def lightning_ms(
    module: DMLModule,
    data: PreloadedBatches,
    warmup: int,
    device: torch.device,
    *,
    progress_bar: bool,
    callbacks: list[L.Callback],
    precision: str = "32-true",
) -> float:
    """ms/step of `trainer.fit` on the pre-loaded batches (logger off, no checkpoints, no validation)."""
    timer = StepTimer(warmup, device)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, precision=precision,
        max_steps=len(data.batches), max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=progress_bar, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=[*callbacks, timer],
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return 1000 * (timer.end - timer.start) / max(timer.steps, 1)


def build(cfg: DictConfig, device: torch.device, count: int) -> tuple[DMLModule, PreloadedBatches, list[Any]]:
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    module = DMLModule.from_config(to_container(cfg), datamodule)
    view = datamodule.views["train"]
    data = PreloadedBatches(preload(datamodule, count, device), list(view.attribute_names), view.attribute_values)
    return module, data, instantiate_callbacks(cfg.callbacks)


def table(rows: list[tuple[str, float]], plain_name: str, base_name: str, parade_name: str) -> str:
    """The result table: median ms/step, speed ratio vs the plain loop, PARADE overhead vs fairdml."""
    ms = dict(rows)
    lines = [f"{'variant':<34} {'ms/step':>9} {'speed vs plain':>15}"]
    for name, value in rows:
        lines.append(f"{name:<34} {value:>9.2f} {ms[plain_name] / value:>15.3f}")
    if parade_name in ms and base_name in ms:
        lines.append(f"PARADE overhead vs fairdml: {100 * (ms[parade_name] / ms[base_name] - 1):+.1f} %")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="tiny", help="a configs/model option: tiny, resnet18, resnet50")
    parser.add_argument("--image-size", type=int, default=None, help="default 32 for tiny, 64 otherwise")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    size = args.image_size or (32 if args.model == "tiny" else 64)
    overrides = [f"model={args.model}", f"data.image_size={size}", "data.num_workers=0"]
    count = args.warmup + args.steps
    module, data, _ = build(compose_config(overrides), device, count)
    parade_module, parade_data, parade_callbacks = build(
        compose_config([*overrides, "experiment=parade"]), device, count
    )
    variants: dict[str, Callable[[], float]] = {
        "(a) plain PyTorch loop": lambda: plain_loop_ms(module, data.batches, args.warmup, device),
        "(b) fairdml, progress bar off": lambda: lightning_ms(
            module, data, args.warmup, device, progress_bar=False, callbacks=[]
        ),
        "(b') fairdml, progress bar on": lambda: lightning_ms(
            module, data, args.warmup, device, progress_bar=True, callbacks=[]
        ),
        "(c) fairdml + PARADE, bar off": lambda: lightning_ms(
            parade_module, parade_data, args.warmup, device, progress_bar=False, callbacks=parade_callbacks
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            times[name].append(run())
    rows = [(name, statistics.median(values)) for name, values in times.items()]
    threads = torch.get_num_threads()
    timing = "wall" if device.type == "cuda" else "process CPU"
    header = (
        f"model={args.model} {size}px device={args.device} steps={args.steps} repeats={args.repeats} "
        f"threads={threads} time={timing}"
    )
    result = header + "\n" + table(rows, *(list(variants)[i] for i in (0, 1, 3)))
    print(result, flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
