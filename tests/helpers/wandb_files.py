"""Read an offline W&B run (`run-<id>.wandb`) without syncing it: history rows, config and summary.

wandb 0.31 writes an offline run only as a record log (no `wandb-summary.json`, no history file) and its
Python package no longer has a reader (`wandb.sdk.internal.datastore` is gone; `wandb.Api` reads only
synced runs from the server). Its own reader is `wandb leet inspect --json`, which prints every record
of the log as one JSON object a line; we run that rather than parse the binary format ourselves, so the
reading follows whatever format the installed wandb writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

INSPECT_TIMEOUT_S = 120


def find_run_file(path: str | Path) -> Path:
    """The newest `run-*.wandb` under a fairdml run folder (its `wandb/`), a W&B run folder, or the file."""
    path = Path(path)
    if path.is_file():
        return path
    files = sorted(path.glob("**/run-*.wandb"), key=lambda file: file.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"no W&B run file (run-*.wandb) under {path}")
    return files[-1]


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every record of a `.wandb` log as a dict (`{"num", "type", <type>: {...}}`), in order."""
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(find_run_file(path))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=INSPECT_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`wandb leet inspect` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    for line in done.stdout.splitlines():
        if line.strip():
            yield json.loads(line)


def read_offline_run(path: str | Path) -> dict[str, Any]:
    """`{"id", "project", "history": [row, ...], "config": {...}, "summary": {...}}` of one offline run.

    Config and summary records are updates; later ones win, as on the W&B server.
    """
    run: dict[str, Any] = {"id": None, "project": None, "history": [], "config": {}, "summary": {}}
    for record in read_records(path):
        kind = record.get("type")
        body = record.get(kind, {}) if isinstance(kind, str) else {}
        if kind == "run":
            run["id"], run["project"] = body.get("run_id"), body.get("project")
            run["config"].update(body.get("config", {}).get("update", {}))
        elif kind == "config":
            run["config"].update(body.get("update", {}))
        elif kind == "history":
            run["history"].append(body.get("item", {}))
        elif kind == "summary":
            run["summary"].update(body.get("update", {}))
    return run
