"""Local sweeps: `fairdml train -m key=a,b other=c,d` runs every combination, `--jobs N` of them at a time.

The grid comes from Hydra's own override grammar and sweeper (`OverridesParser` + `BasicSweeper`), so
`key=a,b`, `key=range(0,3)` and `key=choice(a,b)` mean what they mean in Hydra. Hydra's launcher is not
used: each run is its own `fairdml train` process, as a W&B agent would start it, because a run that
crashes (or a DDP run, whose launcher re-executes the command line) must not take the sweep with it.
Every run gets a subfolder `<sweep>/<NNN>/` (config.yaml, report.json, train.log); `sweep.json` records
each run's overrides and outcome as it goes (the same command run again skips the runs that finished);
at the end a summary table over all runs (CSV + Markdown) and the trade-off plot are written.

With `--jobs N`, threads of this process start and wait for N runs at a time, which share the cores: each
starts with `OMP_NUM_THREADS` = cores // N (N > 1), so 2 jobs on 2 cores train with one thread each.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from fairdml.config import compose_config
from fairdml.reports.runs import FIGURES, is_finished_run, load_run
from fairdml.reports.table import format_markdown, write_csv
from fairdml.utils.atomic import read_json, write_json
from fairdml.utils.processes import THREAD_VARIABLES, Children, thread_budget
from fairdml.utils.run_folder import clear_run_files
from fairdml.utils.run_layout import RunPaths

MANIFEST = "sweep.json"
LOG_TAIL_LINES = 15


def expand_sweep(overrides: list[str]) -> tuple[list[list[str]], list[str]]:
    """Every run's override list (Hydra's grid order) and the keys that take more than one value."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        (grid,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    except HydraException as error:
        raise ValueError(f"bad sweep override: {error}") from None
    swept = [override.get_key_element() for override in parsed if override.is_sweep_override()]
    return grid, swept


def _hydra_value(value: object) -> str:
    """A W&B parameter value written in Hydra's override grammar."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return text if re.fullmatch(r"[\w.\-/@]+", text) else "'" + text.replace("'", "\\'") + "'"


def sweep_file_overrides(path: str | Path) -> list[str]:
    """The local grid of a W&B grid sweep file: its fixed command overrides and `key=v1,v2` per parameter.

    So one sweep file runs both ways: on W&B's servers with `wandb sweep`/`wandb agent`, and offline with
    `fairdml train -m --sweep-file FILE` (W&B sweeps cannot run offline). Only grids: random and
    Bayesian search are decided by W&B's sweep server.
    """
    from wandb.sdk.launch.sweeps.utils import load_sweep_config

    config = load_sweep_config(str(path))
    if config is None:
        raise ValueError(f"could not read the W&B sweep file {path}")
    if config.get("method") != "grid":
        raise ValueError(
            f"{path}: method {config.get('method')!r} needs W&B's sweep server (`wandb sweep` + "
            "`wandb agent`); only method: grid runs locally"
        )
    command = [str(part) for part in config.get("command", [])]
    fixed = command[command.index("train") + 1 :] if "train" in command else []
    overrides = [part for part in fixed if not part.startswith("${")]
    for key, spec in config.get("parameters", {}).items():
        if "values" in spec:
            overrides.append(f"{key}={','.join(_hydra_value(value) for value in spec['values'])}")
        elif "value" in spec:
            overrides.append(f"{key}={_hydra_value(spec['value'])}")
        else:
            raise ValueError(f"{path}: grid parameter {key!r} needs `values` or `value`, got {sorted(spec)}")
    return overrides


def _sweep_dir(first_job: list[str], sweep_dir: str | None) -> Path:
    if sweep_dir:
        return Path(sweep_dir)
    cfg = compose_config(first_job)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return Path(cfg.output_dir) / "sweeps" / f"{cfg.experiment}_{stamp}"


def _check_grid(grid: list[list[str]]) -> None:
    """Compose every run's config before starting any, so a bad key fails now and not after hours."""
    for job in grid:
        if any(override.split("=", 1)[0].lstrip("+~") == "run_dir" for override in job):
            raise ValueError("a sweep chooses each run's folder itself: remove run_dir= from the overrides")
        compose_config(job)


def _run_one(job: list[str], run_dir: Path, group: str, children: Children, threads: dict[str, str]) -> dict | None:
    """One `fairdml train` process; its output goes to `<run_dir>/train.log`. None if the sweep was interrupted.

    A folder left by an earlier failed attempt is the sweep's own: it is cleared, so the new run starts in a
    folder that holds only its `train.log` (which `fairdml train` accepts; any other file it refuses).
    """
    if RunPaths(run_dir).marker.is_file():
        clear_run_files(run_dir)  # only what a run writes: anything else makes `fairdml train` refuse the folder
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "train.log").unlink(missing_ok=True)
    command = [sys.executable, "-m", "fairdml", "train", *job, f"run_dir={run_dir}"]
    env = {key: value for key, value in os.environ.items() if key != "FAIRDML_RUN_DIR"} | threads
    env.setdefault("WANDB_RUN_GROUP", group)  # W&B shows a sweep's runs as one group
    started_at, started = _now(), time.monotonic()
    with open(run_dir / "train.log", "w") as log:
        process = children.start(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if process is None:
            return None
        returncode = children.wait(process)
    if children.stopping:
        return None  # stopped by the sweep, not failed: a re-run runs it again
    record = {"run_dir": run_dir.name, "overrides": job, "returncode": returncode}
    record["seconds"] = round(time.monotonic() - started, 1)
    record.update(started=started_at, ended=_now(), threads={name: env.get(name) for name in THREAD_VARIABLES})
    record["status"] = "finished" if returncode == 0 and is_finished_run(run_dir) else "failed"
    if record["status"] == "failed":
        lines = (run_dir / "train.log").read_text(errors="replace").splitlines()
        record["error"] = "\n".join(lines[-LOG_TAIL_LINES:])
    return record


def _now() -> str:
    return datetime.now().isoformat(timespec="milliseconds")


class _Ledger:
    """`sweep.json` and the progress lines as runs start and end: records stay in grid order whatever order the
    runs finish in, and one thread at a time writes (each write is atomic, so a killed sweep leaves whole records)."""

    def __init__(self, folder: Path, header: dict, grid: list[list[str]]) -> None:
        self.folder, self.header, self.grid = folder, header, grid
        self.records: list[dict | None] = [None] * len(grid)
        self.lock = threading.Lock()

    def runs(self) -> list[dict]:
        return [record for record in self.records if record is not None]

    def started(self, index: int) -> None:
        with self.lock:
            print(f"[{index + 1}/{len(self.grid)}] {' '.join(self.grid[index])}", flush=True)

    def add(self, index: int, record: dict, kept: bool = False) -> None:
        with self.lock:
            self.records[index] = record
            write_json(self.folder / MANIFEST, {**self.header, "runs": self.runs()}, indent=2)
            job = self.grid[index]
            swept = [override for override in job if override.split("=", 1)[0] in self.header["swept"]] or job
            outcome = "finished earlier, kept" if kept else f"{record['status']} in {record['seconds']} s"
            where = self.folder / record["run_dir"]
            print(f"[{index + 1}/{len(self.grid)}] {' '.join(swept)}: {outcome} -> {where}", flush=True)


def _run_grid(grid: list[list[str]], folder: Path, jobs: int, ledger: _Ledger) -> None:
    """Run every grid point the ledger has no record of, `jobs` at a time, starting them in grid order. A failed
    run is recorded and the others go on; Ctrl-C (or an error of the sweep itself) stops every running child."""
    todo = [index for index, record in enumerate(ledger.records) if record is None]
    children, threads = Children(), thread_budget(jobs)

    def run(index: int) -> None:
        if children.stopping:
            return
        ledger.started(index)
        record = _run_one(grid[index], folder / f"{index:03d}", folder.name, children, threads)
        if record is not None:
            ledger.add(index, record)

    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo))), thread_name_prefix="fairdml-sweep")
    try:
        for future in as_completed([pool.submit(run, index) for index in todo]):
            future.result()
    except BaseException:
        children.stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _check_same_grid(folder: Path, overrides: list[str], overwrite: bool) -> None:
    """A sweep folder holds one grid: another grid there is refused (its finished runs would be replaced,
    since runs are numbered by their place in the grid), or, with `overwrite`, its runs are cleared first."""
    path = folder / MANIFEST
    if not path.is_file():
        return
    try:
        earlier = read_json(path, "sweep record")
    except ValueError as error:
        raise ValueError(f"{error} (or use another --sweep-dir)") from None
    if earlier.get("overrides") == overrides:
        return
    finished = [r["run_dir"] for r in earlier.get("runs", []) if r.get("status") == "finished"]
    if not overwrite:
        raise FileExistsError(
            f"sweep folder {folder} holds another grid ({' '.join(earlier.get('overrides', []))}; {len(finished)} "
            f"finished runs): running this grid there would replace them. Use another --sweep-dir, or --overwrite "
            f"to clear that sweep's runs"
        )
    for record in earlier.get("runs", []):
        run_dir = folder / record["run_dir"]
        if RunPaths(run_dir).marker.is_file():
            clear_run_files(run_dir)
    path.unlink()


def _finished_before(folder: Path) -> dict[str, dict]:
    """The finished runs an earlier call recorded in this sweep folder, by run folder name."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    runs = read_json(path, "sweep record").get("runs", [])
    return {record["run_dir"]: record for record in runs if record.get("status") == "finished"}


def run_local_sweep(overrides: list[str], sweep_dir: str | None = None, overwrite: bool = False, jobs: int = 1) -> Path:
    """Run the grid, record each run, then write the summary table and the trade-off plot. The same grid
    again keeps its finished runs (whatever `jobs` either call had); another grid in the same folder is refused
    unless `overwrite`.

    Every run's config is composed and checked before the first run starts; each run is its own `fairdml train`
    process in `<sweep_dir>/<NNN>/`, so one that fails (its train.log says why) does not stop the others.

    Args:
        overrides: `fairdml train -m` overrides; `key=a,b` (or Hydra's `range(...)`, `choice(...)`) sweeps a key.
        sweep_dir: the sweep's folder; None: `<output_dir>/sweeps/<experiment>_<time>`.
        overwrite: clear the runs of another grid found in `sweep_dir` instead of refusing.
        jobs: how many runs train at a time. With more than one, each run starts with `OMP_NUM_THREADS` and
            `MKL_NUM_THREADS` = cores // jobs (at least 1) unless they are set. Figures can depend on a run's
            thread count (the order of float sums), never on `jobs` itself.

    Returns:
        The sweep folder: sweep.json, summary.csv, summary.md and one subfolder per run.

    Example:
        The grid below is four runs (`expand_sweep`), minutes of training; a key that does not exist fails before
        any run starts:

        >>> overrides = ["loss=margin,triplet", "seed=0,1", "model=tiny", "trainer.max_epochs=1"]
        >>> grid, swept = expand_sweep(overrides)
        >>> len(grid), swept, grid[1]
        (4, ['loss', 'seed'], ['loss=margin', 'seed=1', 'model=tiny', 'trainer.max_epochs=1'])
        >>> folder = run_local_sweep(overrides, sweep_dir="outputs/sweeps/loss")  # doctest: +SKIP
        >>> run_local_sweep(["model.embeding_dim=32,64"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: bad configuration: ...Did you mean 'model.embedding_dim'?
    """
    if jobs < 1:
        raise ValueError(f"--jobs is how many runs train at a time: 1 or more, got {jobs}")
    grid, swept = expand_sweep(overrides)
    _check_grid(grid)
    folder = _sweep_dir(grid[0], sweep_dir)
    _check_same_grid(folder, overrides, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    header = {"overrides": overrides, "swept": swept, "created": datetime.now().isoformat(), "jobs": jobs}
    ledger = _Ledger(folder, header, grid)
    at_a_time = f", {jobs} at a time" if jobs > 1 else ""
    print(f"fairdml sweep: {len(grid)} runs over {', '.join(swept) or 'nothing'} in {folder}{at_a_time}", flush=True)
    done = _finished_before(folder)
    for index, job in enumerate(grid):
        previous = done.get(f"{index:03d}")
        if previous is not None and previous["overrides"] == job and is_finished_run(folder / previous["run_dir"]):
            ledger.add(index, previous, kept=True)  # the same run finished in an earlier, interrupted call
    _run_grid(grid, folder, jobs, ledger)
    summarize_sweep(folder)
    failed = [record for record in ledger.runs() if record["status"] != "finished"]
    if len(failed) < len(grid):
        from fairdml.reports.compare import run_compare

        run_compare([str(folder)], str(folder))
    if failed:
        names = ", ".join(record["run_dir"] for record in failed)
        print(f"fairdml sweep: {len(failed)} of {len(grid)} runs failed ({names}); see their train.log")
    return folder


def summary_rows(folder: Path) -> tuple[list[str], list[list]]:
    """One row per run of a sweep: folder, status, swept values, headline figures (blank if it failed)."""
    manifest = read_json(folder / MANIFEST, "sweep record")
    swept = manifest["swept"]
    columns = ["run", "status", *swept, *FIGURES]
    rows = []
    for record in manifest["runs"]:
        values = dict(override.split("=", 1) for override in record["overrides"])
        row = [record["run_dir"], record["status"], *(values.get(key, "") for key in swept)]
        finished = record["status"] == "finished"
        figures = load_run(folder / record["run_dir"]).figures if finished else {}
        rows.append(row + [figures.get(name) for name in FIGURES])
    return columns, rows


def summarize_sweep(folder: str | Path) -> str:
    """Write `summary.csv` and `summary.md` in the sweep folder and print the Markdown table."""
    folder = Path(folder)
    columns, rows = summary_rows(folder)
    write_csv(folder / "summary.csv", columns, rows)
    markdown = format_markdown(columns, rows)
    (folder / "summary.md").write_text(markdown + "\n")
    print(f"\n{markdown}\n\nfairdml sweep: summary in {folder / 'summary.csv'}")
    return markdown
