"""One prepared run for a GPU machine: step rates, PARADE's overhead, the report's time, the path matrix, the
loader and the GPU tests, in one table (about 6 minutes on an H100).

(i)   ResNet-50 at 224 px, batch 128, bf16 autocast, channels_last: a hand-written PyTorch loop vs fairdml's
      DMLModule in a Lightning Trainer, eager and torch.compile'd (`--no-compile` leaves the compiled rows out).
(ii)  PARADE's overhead (`experiment=parade`) on the same model and batches, eager and compiled.
(iii) `fairdml.metrics.functional.report.fairness_report` on 1M x 128 embeddings (two groups).
(iv)  the test suite's GPU tests: `pytest -q -m 'not slow' -k 'cuda or gpu'`.
(v)   the path matrix's one-GPU cells: every named experiment, tiny model, `fairdml train` to its report, card
      and model.pt, in bf16-mixed and 16-mixed (fp16 with Lightning's scaler).
(vi)  the training loader at 224 px (`bench_input_pipeline.py`): CPU ms per image before / after the decoded
      cache, and the device stage's time per image on the GPU.
Batches of (i)-(ii) are random images (pre-loaded on the device) with `samples_per_class` images per class, so
the miner sees the same structure as in training.

    python benchmarks/bench_gpu.py                 # on the GPU machine
    python benchmarks/bench_gpu.py --cpu-smoke     # tiny sizes on the CPU (tested)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_input_pipeline  # noqa: E402
from bench_step import PreloadedBatches, clock, device_sync, lightning_ms  # noqa: E402

from fairdml.callbacks.instantiate import instantiate_callbacks  # noqa: E402
from fairdml.config import compose_config, to_container  # noqa: E402
from fairdml.models.module import DMLModule  # noqa: E402
from fairdml.train import run_training  # noqa: E402

MATRIX_EXPERIMENTS = (
    "baseline", "group_balanced", "reweighted", "worst_group", "parade", "parade_paper", "group_balanced_parade",
)  # fmt: skip
TINY = [
    "model=tiny", "data.options.num_classes=30", "data.options.samples_per_class=12", "data.batch_size=32",
    "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger=csv", "evaluation.bootstrap_resamples=50",
]  # fmt: skip

ROOT = Path(__file__).resolve().parents[1]


def synthetic_batches(count: int, batch_size: int, image_size: int, per_class: int, device: torch.device) -> list:
    """`count` batches of random images, `per_class` per class, a binary attribute; channels_last."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        images = torch.randn(batch_size, 3, image_size, image_size, generator=generator)
        labels = torch.arange(batch_size // per_class).repeat_interleave(per_class)
        attributes = torch.randint(0, 2, (batch_size, 1), generator=generator)
        batch = {"image": images, "label": labels, "attributes": attributes, "index": torch.arange(batch_size)}
        batch = {k: v.to(device) for k, v in batch.items()}
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        batches.append(batch)
    return batches


def make_module(overrides: list[str], device: torch.device) -> tuple[DMLModule, list[L.Callback]]:
    cfg = compose_config(overrides)
    L.seed_everything(cfg.seed, verbose=False)
    module = DMLModule(to_container(cfg), 64, ["majority", "minority"], "style")
    return module.to(device, memory_format=torch.channels_last), instantiate_callbacks(cfg.callbacks)


def plain_ms(module: DMLModule, batches: list, warmup: int, device: torch.device, compiled: bool) -> float:
    """Forward under bf16 autocast, the module's PML miner + loss, backward, AdamW: written by hand."""
    model = module.model
    step_model = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(module.loss.parameters()), lr=1e-3)
    sync, now, start = device_sync(device), clock(device), 0.0
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for index, batch in enumerate(batches):
        if index == warmup:
            sync()
            start = now()
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            embeddings = step_model(batch["image"])
        embeddings = embeddings.float()
        pairs = module.miner(embeddings, batch["label"]) if module.miner is not None else None
        loss = module.loss(embeddings, batch["label"], pairs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync()
    return 1000 * (now() - start) / (len(batches) - warmup)


def report_seconds(n: int, dim: int, device: torch.device) -> float:
    from fairdml.metrics.functional.report import fairness_report

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, max(n // 50, 2), (n,), generator=generator)
    centres = torch.randn(int(labels.max()) + 1, dim, generator=generator)
    embeddings = torch.nn.functional.normalize(centres[labels] + 0.5 * torch.randn(n, dim, generator=generator), dim=1)
    groups = (torch.rand(n, generator=generator) < 0.2).long()
    embeddings, labels, groups = embeddings.to(device), labels.to(device), groups.to(device)
    device_sync(device)()
    start = time.perf_counter()
    fairness_report(embeddings, labels, groups, group_names=["majority", "minority"], leakage=False)
    device_sync(device)()
    return time.perf_counter() - start


def matrix_cells(experiments: tuple[str, ...], precisions: tuple[str, ...], device: torch.device) -> list[str]:
    """(v): each cell trained to its report, card and model.pt on `device`; a failure is a row, not a crash."""
    import tempfile

    rows = []
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as folder:
        for experiment in experiments:
            for precision in precisions:
                run_dir = Path(folder) / f"{experiment}-{precision}"
                overrides = [
                    *TINY, f"experiment={experiment}", f"trainer.precision={precision}",
                    f"trainer.accelerator={accelerator}", f"run_dir={run_dir}",
                ]  # fmt: skip
                start = time.perf_counter()
                try:
                    run_training(compose_config(overrides))
                    missing = [n for n in ("report.json", "MODEL_CARD.md", "model.pt") if not (run_dir / n).is_file()]
                    status = f"missing {missing}" if missing else "ok"
                except Exception as error:  # the table says which cell failed and why
                    status = f"FAILED {type(error).__name__}: {str(error)[:80]}"
                rows.append(f"(v) {experiment:<22} {precision:<10} {time.perf_counter() - start:>6.1f} s  {status}")
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU, to test the script")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile'd rows")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 30; smoke 2)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3; smoke 1")
    parser.add_argument("--report-n", type=int, default=None, help="embeddings of (iii) (default 1M; smoke 2000)")
    parser.add_argument("--skip-tests", action="store_true", help="leave out (iv)")
    args = parser.parse_args(argv)
    smoke = args.cpu_smoke
    device = torch.device("cpu" if smoke or not torch.cuda.is_available() else "cuda")
    steps, repeats = args.steps or (2 if smoke else 30), args.repeats or (1 if smoke else 3)
    report_n = args.report_n or (2000 if smoke else 1_000_000)
    warmup = 1 if smoke else 5
    model, size, batch_size = ("tiny", 32, 32) if smoke else ("resnet50", 224, 128)
    precision = "32-true" if device.type == "cpu" else "bf16-mixed"
    overrides = [f"model={model}", f"data.image_size={size}", f"data.batch_size={batch_size}"]
    batches = synthetic_batches(warmup + steps, batch_size, size, 4, device)

    def data() -> PreloadedBatches:
        return PreloadedBatches(batches, ["style"], [["a", "b"]])

    module, _ = make_module(overrides, device)
    parade_module, parade_callbacks = make_module([*overrides, "experiment=parade"], device)
    variants = {
        "plain loop, eager": lambda: plain_ms(module, batches, warmup, device, False),
        "fairdml, eager": lambda: lightning_ms(
            module, data(), warmup, device, progress_bar=False, callbacks=[], precision=precision
        ),
        "fairdml + PARADE, eager": lambda: lightning_ms(
            parade_module, data(), warmup, device, progress_bar=False, callbacks=parade_callbacks, precision=precision
        ),
    }
    if not (smoke or args.no_compile):
        compiled_module, _ = make_module([*overrides, "model.compile=true"], device)
        compiled = [*overrides, "model.compile=true"]
        compiled_parade, compiled_callbacks = make_module([*compiled, "experiment=parade"], device)
        variants["plain loop, compiled"] = lambda: plain_ms(compiled_module, batches, warmup, device, True)
        variants["fairdml, compiled"] = lambda: lightning_ms(
            compiled_module, data(), warmup, device, progress_bar=False, callbacks=[], precision=precision
        )
        variants["fairdml + PARADE, compiled"] = lambda: lightning_ms(
            compiled_parade,
            data(),
            warmup,
            device,
            progress_bar=False,
            callbacks=compiled_callbacks,
            precision=precision,
        )
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            times[name].append(run())
    ms = {name: statistics.median(values) for name, values in times.items()}
    lines = [
        f"device={device} model={model} {size}px batch={batch_size} precision={precision} channels_last "
        f"steps={steps} repeats={repeats}",
        f"{'(i)/(ii) variant':<28} {'ms/step':>9} {'img/s':>9} {'speed vs plain':>15}",
    ]
    for name, value in ms.items():
        plain = ms["plain loop, compiled" if "compiled" in name else "plain loop, eager"]
        lines.append(f"{name:<28} {value:>9.2f} {1000 * batch_size / value:>9.1f} {plain / value:>15.3f}")
    for mode in ("eager", "compiled"):
        if f"fairdml, {mode}" in ms:
            overhead = 100 * (ms[f"fairdml + PARADE, {mode}"] / ms[f"fairdml, {mode}"] - 1)
            lines.append(f"(ii) PARADE overhead vs fairdml, {mode}: {overhead:+.1f} %")
    lines.append(f"(iii) fairness_report, {report_n} x 128: {report_seconds(report_n, 128, device):.2f} s")
    if smoke or args.skip_tests:
        lines.append("(iv) GPU tests: skipped (--cpu-smoke / --skip-tests)")
    else:
        command = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-k", "cuda or gpu"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        lines.append(f"(iv) GPU tests (exit {result.returncode}): {summary}")
    if smoke:
        lines += matrix_cells(("baseline", "parade"), ("bf16-mixed",), device)
    else:
        lines += matrix_cells(MATRIX_EXPERIMENTS, ("bf16-mixed", "16-mixed"), device)
    loader_args = ["--identities", "20" if smoke else "100", "--repeats", "1" if smoke else "2"]
    loader_args += ["--image-size", "32" if smoke else "224", "--device", str(device)]
    loader = bench_input_pipeline.main(loader_args)
    lines += [f"(vi) {line}" for line in loader.splitlines() if line.startswith("| ") and "---" not in line]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
