"""The step benchmarks run and print their tables (tiny sizes on the CPU; the real runs are by hand)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

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


def test_bench_run_smoke_prints_two_profiles_side_by_side():
    table = _load("bench_run").main(["--smoke", "--compare-epochs", "1", "2"])
    for row in ("s (1 ep)", "s (2 ep)", "  training steps", "  validations", "  other: loading, checkpoints, logging",
                "model card", "run total (report)", "ms per training step", "s per validation",
                "share: I/O (report, export)", "share: cards (data, model)"):  # fmt: skip
        assert row in table, table
    counts = next(line for line in table.splitlines() if line.startswith("validations "))
    assert counts.split()[1:] == ["1", "2"], table


@pytest.mark.slow  # four fairdml train processes: ~25 s even tiny
def test_bench_sweep_jobs_smoke_prints_the_table():
    """Two tiny runs one at a time with every core's threads, then two at a time with half each."""
    bench = _load("bench_sweep_jobs")
    table = bench.main(["--smoke"])
    header, _, one, two = table.splitlines()
    assert header.startswith("| jobs | threads per run | wall s | wall / jobs=1 wall |"), table
    cores = bench.cores()
    assert one.startswith(f"| 1 | {cores} |") and "| 1.00× |" in one and one.endswith("| 2 of 2 |"), table
    assert two.startswith(f"| 2 | {max(1, cores // 2)} |") and two.endswith("| 2 of 2 |"), table
