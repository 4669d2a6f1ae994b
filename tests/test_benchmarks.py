"""The step benchmarks run and print their tables (tiny sizes on the CPU; the real runs are by hand)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    """A benchmark script as a module, run in this process (a subprocess would import torch again)."""
    sys.path.insert(0, str(BENCHMARKS))  # bench_gpu imports bench_step
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_bench_step_prints_the_table():
    table = _load("bench_step").main(["--steps", "1", "--warmup", "1", "--repeats", "1"])
    for row in ("(a) plain PyTorch loop", "(b) fairdml, progress bar off", "(b') fairdml, progress bar on",
                "(c) fairdml + PARADE", "PARADE overhead vs fairdml"):  # fmt: skip
        assert row in table, table
    assert "speed vs plain" in table


def test_bench_gpu_cpu_smoke_prints_the_table():
    table = _load("bench_gpu").main(["--cpu-smoke", "--steps", "1", "--report-n", "500"])
    for row in ("plain loop, eager", "fairdml + PARADE, eager", "(ii) PARADE overhead", "(iii) fairness_report",
                "(iv) GPU tests: skipped", "(v) baseline", "(v) parade", "(vi) | before: PIL decode",
                "(vi) | after: decoded cache, loader only"):  # fmt: skip
        assert row in table, table
    assert "FAILED" not in table and "missing" not in table, table


def test_bench_input_pipeline_prints_before_and_after():
    table = _load("bench_input_pipeline").main(["--identities", "20", "--repeats", "1", "--image-size", "32"])
    for row in ("| before: PIL decode + augment in the loader |", "| after: decoded cache, loader only |",
                "| after: device stage", "| after: cache build"):  # fmt: skip
        assert row in table, table
