"""`fairdml compare`: the accuracy–fairness trade-off over finished runs (a sweep folder or run folders).

Writes `compare.csv` / `compare.md` (one row per setting: mean and std over seeds, Pareto flags),
`tradeoff.png` and `tradeoff.html` (interactive, self-contained), prints the table, and logs all of it to
W&B when the runs were logged online (or when asked with `--wandb online|offline`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from fairdml.reports.runs import Run, find_runs, unfinished_runs
from fairdml.reports.table import format_markdown, write_csv
from fairdml.reports.tradeoff import group_settings, settings_table
from fairdml.reports.tradeoff_plot import save_html, save_png


def _output_folder(paths: Sequence[str], out: str | None) -> Path:
    if out:
        return Path(out)
    return Path(paths[0]) if len(paths) == 1 else Path("compare")


def run_compare(paths: Sequence[str], out: str | None = None, wandb: str = "auto") -> dict[str, Path]:
    """Compare every finished run under `paths`; returns the written files by kind."""
    runs = find_runs(paths)
    for folder, why in unfinished_runs(paths):
        print(f"fairdml compare: left out {folder}: {why}")
    if not runs:
        raise FileNotFoundError(f"no finished run (a folder with config.yaml and report.json) under {list(paths)}")
    settings, keys = group_settings(runs)
    table = settings_table(settings, keys)
    folder = _output_folder(paths, out)
    folder.mkdir(parents=True, exist_ok=True)
    title = f"accuracy–fairness trade-off: {len(runs)} runs, {len(settings)} settings"
    written = {
        "csv": write_csv(folder / "compare.csv", *table),
        "png": save_png(settings, folder / "tradeoff.png", title),
        "html": save_html(settings, table, folder / "tradeoff.html", title),
    }
    markdown = format_markdown(*table)
    written["markdown"] = folder / "compare.md"
    written["markdown"].write_text(markdown + "\n")
    print(f"\n{markdown}\n")
    for kind in ("png", "html", "csv"):
        print(f"fairdml compare: wrote {written[kind]}")
    mode = _wandb_mode(wandb, runs)
    if mode != "disabled":
        _log_to_wandb(mode, runs, table, written, folder.name)
    return written


def _wandb_mode(requested: str, runs: Sequence[Run]) -> str:
    """`auto`: online when the runs were logged online (and a key is set), otherwise not at all."""
    from fairdml.loggers import wandb_mode

    if requested == "auto":
        online = any(run.flat_config.get("logger.wandb.mode") == "online" for run in runs)
        return wandb_mode("online") if online else "disabled"
    return wandb_mode(requested)


def _log_to_wandb(mode: str, runs: Sequence[Run], table, written: dict[str, Path], name: str) -> None:
    """One W&B run of job type `compare` with the plot, the page and the table; failures only warn."""
    try:
        import wandb

        project = runs[0].flat_config.get("logger.wandb.project") or "fairdml"
        entity = runs[0].flat_config.get("logger.wandb.entity")
        with wandb.init(
            project=project, entity=entity, job_type="compare", name=f"compare-{name}", mode=mode,
            dir=str(written["png"].parent), settings=wandb.Settings(init_timeout=30),
        ) as run:  # fmt: skip
            columns, rows = table
            run.log({
                "tradeoff": wandb.Image(str(written["png"])),
                "tradeoff_interactive": wandb.Html(written["html"].read_text(encoding="utf-8"), inject=False),
                "settings": wandb.Table(columns=columns, data=rows),
            })  # fmt: skip
    except Exception as error:  # noqa: BLE001 - the local files are written; W&B is extra
        warnings.warn(f"fairdml compare: not logged to W&B: {error!r}", stacklevel=2)
