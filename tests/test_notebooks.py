"""Every notebook under notebooks/ runs end to end, on this environment's own kernel, and is committed clean.

Each notebook runs in a fresh temporary working directory (its `outputs/` land there), on a `python3` kernel
spec written into that directory for this interpreter, so a kernel registered elsewhere on the machine (or
none) changes nothing. Outputs and execution counts must be stripped before a notebook is committed: they
bloat diffs and go stale the moment the code changes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
IDS = [path.stem for path in NOTEBOOKS]
CELL_TIMEOUT_S = 600
# Over a minute alone on 2 cores (measured): strength_sweep trains 2 runs in `fairdml train` subprocesses,
# each paying torch + Lightning's import (~12 s) again. The others run in `pytest -q`.
SLOW = {"strength_sweep"}
RUNS = [pytest.param(path, id=path.stem, marks=[pytest.mark.slow] if path.stem in SLOW else []) for path in NOTEBOOKS]


def test_there_are_notebooks():
    assert {"quickstart", "audit_embeddings", "strength_sweep"} <= set(IDS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"


def _kernel_manager(folder: Path) -> KernelManager:
    """A `python3` kernel that runs `sys.executable`, found only in `folder` (nothing registered globally)."""
    write_kernel_spec(folder / "kernels" / "python3")
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


@pytest.mark.parametrize("path", RUNS)
def test_notebook_runs(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    workdir = tmp_path / "work"
    workdir.mkdir()
    client = NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path),
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    started = time.monotonic()
    client.execute(env=env)  # raises CellExecutionError, naming the cell, when one fails
    print(f"{path.name}: {time.monotonic() - started:.1f} s on {sys.executable}")
