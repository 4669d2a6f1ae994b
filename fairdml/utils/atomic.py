"""Atomic file writes: a file in a run folder is either the old one or the whole new one, never half.

A run killed during a write (SIGKILL, a full disk, a node taken back) must not leave a truncated
report.json or model.pt for a later `fairdml card`, `compare` or `export` to read as if it were whole.
Each writer writes a temporary file in the same folder, flushes it to disk and renames it over the
target (`os.replace` is atomic on POSIX and Windows within one file system).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner alone; a run's files get the mode a plain open() gives.
_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    `suffix` keeps an extension some writers insist on (`np.savez` appends `.npz` to other names).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else ".tmp", dir=target.parent
    )
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        with open(temporary_path, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary_path, _FILE_MODE)
        os.replace(temporary_path, target)
    except (OSError, RuntimeError) as error:
        if disk_is_full(error, target.parent):
            raise OSError(
                errno.ENOSPC,
                f"no space left on the device of {target.parent} while writing {target.name}; "
                f"the previous {target.name}, if any, is unchanged",
            ) from error
        raise
    finally:
        temporary_path.unlink(missing_ok=True)


def disk_is_full(error: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of space: an ENOSPC OSError, or a writer that hides it (torch.save's C++
    stream raises `RuntimeError: ... basic_ios::clear`) on a device with almost nothing left."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, **dumps_kwargs: Any) -> Path:
    """Write strict JSON (no NaN tokens) with two-space indents, atomically."""
    dumps_kwargs.setdefault("indent", 2)
    return write_text(path, json.dumps(data, allow_nan=False, **dumps_kwargs) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON") -> Any:
    """A JSON file fairdml wrote, or one ValueError naming the file, the line and what to do: a file written
    by an older fairdml without atomic writes, cut short by a kill or a full disk, or edited by hand."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a {what} file: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}:{error.lineno}: not readable {what} ({error.msg}); the file was cut short or edited: restore "
            f"it, or remove it and re-create it (re-run the command that wrote it)"
        ) from None


def sha256_of(path: str | os.PathLike) -> str:
    """The file's SHA-256 in hex, read in 1 MiB blocks: how fairdml checks weights it wrote or cached."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
