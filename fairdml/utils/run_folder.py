"""The run folder's rules: one run per folder, checkpoints read safely, the selected checkpoint on record.

A run folder's files must all come from one run. Training into a folder that holds another run would mix
them (a new report beside old checkpoints, new rows after old ones in metrics.csv, `-v1` checkpoint files
that a later resume or export picks), so an existing run is refused unless the user resumes it or asks to
overwrite it, which clears it first. The checkpoint the run selected is written to `selection.json`, so
`fairdml export` never has to guess it from file names.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import pickle
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from fairdml.utils.atomic import atomic_path, read_json, write_json
from fairdml.utils.run_layout import (
    OUTPUT_SET,
    RUN_MARKER_FILE,
    RUN_OWNED,
    RUN_OWNED_PATTERNS,
    SELECTION_FILE,
    STAGING_DIR,
    RunPaths,
)

# Files a launcher (`fairdml train -m`) writes into a new run's folder before the run starts.
LAUNCHER_FILES = ("train.log",)


def prepare_run_dir(run_dir: Path, resume: str | None, overwrite: bool) -> None:
    """Create `run_dir` with its marker, or accept an existing one only for a resume or an explicit overwrite.

    overwrite=true clears only a folder whose `.fairdml-run` marker proves it is a fairdml run, and only the
    files a run writes (`RUN_OWNED`): a project folder that happens to hold a `config.yaml` is never deleted.
    """
    if resume is not None and overwrite:
        raise ValueError(
            "resume and overwrite=true contradict each other: resume continues the run, overwrite clears it"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run_dir={run_dir} is a file, not a folder; choose another run_dir")
    existing = sorted(p.name for p in run_dir.iterdir() if p.name not in LAUNCHER_FILES) if run_dir.is_dir() else []
    if existing and resume is None:
        if not overwrite:
            raise FileExistsError(
                f"run_dir={run_dir} already holds files ({', '.join(existing[:6])}); a new run there would mix "
                f"with them. Continue that run with resume=last, clear it with overwrite=true, or choose "
                f"another run_dir"
            )
        if not RunPaths(run_dir).marker.is_file():
            raise FileExistsError(
                f"overwrite=true refuses to clear run_dir={run_dir}: it has no {RUN_MARKER_FILE} file, so it is "
                f"not a folder a fairdml run made (it holds {', '.join(existing[:6])}); choose an empty or new folder"
            )
        for name in clear_run_files(run_dir):
            print(f"fairdml: overwrite=true kept {run_dir / name}: a run does not write it")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not RunPaths(run_dir).marker.is_file():
        write_json(RunPaths(run_dir).marker, {"run_id": uuid.uuid4().hex, "created": datetime.now().isoformat()})


def clear_run_files(run_dir: Path, keep: tuple[str, ...] = ()) -> list[str]:
    """Delete what a run writes in `run_dir` (`RUN_OWNED`) but `keep`; return the names of what is left there."""
    for path in sorted(run_dir.iterdir()):
        if path.name in keep or not _owned(path.name):
            continue
        if path.name != RUN_MARKER_FILE:  # the marker last: a failure midway leaves the folder provably a run
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if RUN_MARKER_FILE not in keep:
        RunPaths(run_dir).marker.unlink(missing_ok=True)
    return sorted(p.name for p in run_dir.iterdir())


def _owned(name: str) -> bool:
    return name in RUN_OWNED or any(fnmatch.fnmatch(name, pattern) for pattern in RUN_OWNED_PATTERNS)


def _in_output_set(name: str) -> bool:
    return name in OUTPUT_SET or fnmatch.fnmatch(name, "embeddings_*.npz")


@contextlib.contextmanager
def staged_outputs(folder: Path, replace_all: bool = False) -> Iterator[Path]:
    """A folder to write a closing output set into (report, report.csv, embeddings, model.pt, the card): when
    the block succeeds, the set is renamed into `folder` (with `replace_all`, an audit's, after removing every
    file of the earlier one; else the set's earlier files that the new set lacks); when it fails, `folder` is
    as it was, so a report never sits beside another run's card. The staging folder has `folder`'s name (the
    card names the folder it is written in) and links to its other files (the card reads config.yaml, ...)."""
    staging = folder / STAGING_DIR / folder.name
    shutil.rmtree(folder / STAGING_DIR, ignore_errors=True)  # a killed writer's leftovers
    staging.mkdir(parents=True)
    try:
        for path in folder.iterdir():
            if path.is_file() and not _in_output_set(path.name):
                try:
                    os.link(path, staging / path.name)
                except OSError:  # a file system without hard links
                    shutil.copy2(path, staging / path.name)
        yield staging
        staged = [path for path in staging.iterdir() if _in_output_set(path.name)]
        if replace_all:
            clear_run_files(folder, keep=(RUN_MARKER_FILE, STAGING_DIR))
        else:
            names = {path.name for path in staged}
            for old in [p for p in folder.iterdir() if _in_output_set(p.name) and p.name not in names]:
                old.unlink()
        for path in staged:  # renames within one file system: no space needed, never half a file
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(folder / STAGING_DIR, ignore_errors=True)


def run_id(run_dir: Path) -> str | None:
    """The id in the folder's marker (None: not a run folder, or one made before markers existed)."""
    path = RunPaths(run_dir).marker
    try:
        return read_json(path, "run marker")["run_id"] if path.is_file() else None
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a fairdml run marker (unreadable JSON); it is fairdml's own file") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """`torch.load(weights_only=True)` with one clear error for a missing, truncated or unsafe file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as file:
        head = file.read(2)
    if not head.startswith(b"PK") and head[:1] != b"\x80":  # torch.save writes a zip (PK), or a pickle (0x80)
        raise ValueError(f"{path} is not a checkpoint: not a file torch.save writes (nor a pickle)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(str(error))
        raise ValueError(
            f"refused to load {path}: it holds objects other than tensors and plain containers, which could "
            f"run code ({reason}). fairdml checkpoints never do; use a checkpoint fairdml wrote"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"checkpoint {path} is unreadable, truncated or corrupt ({reason}); resume from another one "
            f"with resume=PATH (e.g. a best-*.ckpt in the same folder)"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def _unpickler_reason(message: str) -> str:
    """What torch's weights-only unpickler objected to, without its advice to load unsafely."""
    _, found, rest = message.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if found else message).splitlines() if line.strip()]
    return lines[0][:200] if lines else "unknown"


def remove_orphan_checkpoints(run_dir: Path, checkpoint: dict[str, Any], resumed_from: Path) -> list[Path]:
    """Delete checkpoints written after `checkpoint` (an interrupted timeline), which it does not know of.

    Left in place, the replayed epochs would save `-v1` copies beside them and the folder would hold two
    histories. Only for a checkpoint of this run folder. Returns the removed paths.
    """
    folder = RunPaths(run_dir).checkpoints
    if resumed_from.resolve().parent != folder.resolve():
        return []
    # By file name: the checkpoint's paths are absolute and name the folder it was written in, which a moved
    # or copied run no longer is (the checkpoints folder is flat, so a name is enough)
    known = {resumed_from.name}
    for key, state in checkpoint.get("callbacks", {}).items():
        if "ModelCheckpoint" in key and isinstance(state, dict):
            known |= {Path(p).name for p in state.get("best_k_models", {})}
            known |= {Path(state[k]).name for k in ("best_model_path", "last_model_path") if state.get(k)}
    orphans = [p for p in sorted(folder.glob("*.ckpt")) if p.name not in known]
    orphans += sorted(folder.glob(".*.tmp"))  # a write killed before its rename
    for path in orphans:
        path.unlink()
    return orphans


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file in the same folder, then renamed over the target.

    Lightning's own save goes through fsspec, whose local "transaction" writes to the system temp folder and
    then moves the file, which is a copy (not atomic) when that folder is on another file system.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        with atomic_path(path) as temporary:
            torch.save(checkpoint, temporary)


def write_selection(run_dir: Path, checkpoint_callback: Any, validated_epochs: list[int]) -> dict[str, Any]:
    """Record the checkpoint Lightning's `ModelCheckpoint` selected, with its monitor and score."""
    best = getattr(checkpoint_callback, "best_model_path", "") if checkpoint_callback is not None else ""
    score = getattr(checkpoint_callback, "best_model_score", None)
    selection = {
        "checkpoint": str(Path(best).resolve().relative_to(run_dir.resolve())) if best else None,
        "monitor": getattr(checkpoint_callback, "monitor", None),
        "mode": getattr(checkpoint_callback, "mode", None),
        "score": float(score) if score is not None else None,
        "validated_epochs": list(validated_epochs),
    }
    write_json(RunPaths(run_dir).selection, selection)
    return selection


def read_selection(run_dir: Path) -> dict[str, Any]:
    """The run's recorded selection; the error says what to do for runs that have none."""
    path = RunPaths(run_dir).selection
    if not path.is_file():
        raise FileNotFoundError(
            f"{run_dir} has no {SELECTION_FILE} (the record of the checkpoint the run selected): the run did not "
            f"finish, or predates it. Name the checkpoint instead: fairdml export {run_dir}/checkpoints/<file>.ckpt"
        )
    selection = read_json(path, "selection")
    if not selection.get("checkpoint"):
        raise FileNotFoundError(
            f"{path}: the run selected no checkpoint (no epoch was validated); name one: "
            f"fairdml export {run_dir}/checkpoints/last.ckpt --out M.pt"
        )
    return selection


def selected_by(selection: dict[str, Any]) -> dict[str, Any] | None:
    """The monitor, mode and score a run selected its checkpoint by (selection.json), for config.json."""
    return {key: selection[key] for key in ("monitor", "mode", "score") if key in selection} or None
