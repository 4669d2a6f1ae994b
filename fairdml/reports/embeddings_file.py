"""Read and check an embeddings .npz (`embeddings`, `labels`, `groups`), for `fairdml audit` and the model card.

Its own module so that the card can read embeddings without importing the audit command (which writes the card).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fairdml.utils.atomic import atomic_path

REQUIRED_ARRAYS = ("embeddings", "labels", "groups")
SAVE_HINT = "save the arrays together with np.savez(PATH, embeddings=..., labels=..., groups=...)"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip
_NPY_MAGIC = b"\x93NUMPY"


def _looks_like_text(head: bytes) -> bool:
    """UTF-8 without NUL bytes; the read may have cut a multi-byte character at its end."""
    if not head or b"\x00" in head:
        return False
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


def _npy_description(path: Path) -> str:
    """What the .npy holds (shape, dtype) when its header reads, so the user sees which array it is."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
    except (ValueError, OSError, EOFError):
        return "a .npy array, a single array"
    return f"a .npy array, a single one of shape {shape} and dtype {dtype}"


def _check_is_npz(path: Path) -> None:
    """Name what the file is when it is not a zip, before numpy reports a misleading cause (pickle)."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(_ZIP_MAGIC):
        return
    if not head:
        what = "an empty file"
    elif head.startswith(_NPY_MAGIC):
        what = _npy_description(path)
    elif _looks_like_text(head):
        first_line = head.decode("utf-8", errors="replace").splitlines()[0][:40] if head.strip() else ""
        what = f"a text file starting {first_line!r}"
    else:
        what = f"binary data starting {head[:8]!r}, not a zip"
    raise ValueError(f"{path} is not an .npz archive (it is {what}); {SAVE_HINT}")


def _read_array(data: np.lib.npyio.NpzFile, name: str, path: Path) -> np.ndarray:
    """One array of the archive; errors name the array and whether it is pickle, corruption or not numpy."""
    try:
        array = data[name]
    except ValueError as error:
        if "allow_pickle" in str(error):  # object arrays need pickle
            raise ValueError(
                f"{path}: array {name!r} is an object array, which cannot be read without pickle (not allowed: an "
                f".npz from elsewhere could run code); save it as a numeric or str array, e.g. groups as "
                f"np.asarray(groups, dtype=str)"
            ) from error
        raise ValueError(f"{path}: array {name!r} is corrupt ({error})") from error
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise ValueError(f"{path} is not a readable .npz archive (truncated or corrupt zip: {error})") from error
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: member {name!r} is not a numpy array (a zip that is not an .npz?); {SAVE_HINT}")
    return array


def load_embeddings_npz(npz_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read and check `embeddings` (N, D) float, `labels` (N,) int, `groups` (N,) int or str.

    Errors (ValueError, FileNotFoundError or KeyError, one line each) name the file and the actual problem:
    not an .npz (a .npy array, a text file, a truncated or corrupt zip), a missing array, a mismatching
    shape. `allow_pickle=False`: an .npz from elsewhere must not run code; store string groups as a numpy
    str array, not objects.
    """
    path = Path(npz_path)
    if not path.exists():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is a folder, not an .npz file of embeddings")
    _check_is_npz(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in REQUIRED_ARRAYS if name not in data.files]
            if missing:
                raise KeyError(f"{path} lacks array(s) {missing}; it has {data.files}, needs {list(REQUIRED_ARRAYS)}")
            arrays = {name: _read_array(data, name, path) for name in data.files}
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ValueError(f"{path} is not a readable .npz archive (truncated or corrupt zip: {error})") from error
    embeddings, labels, groups = (arrays[name] for name in REQUIRED_ARRAYS)
    if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
        raise ValueError(
            f"{path}: embeddings must be a 2-D float array (N, D), got {embeddings.dtype} {embeddings.shape}"
        )
    n = embeddings.shape[0]
    for name, array in (("labels", labels), ("groups", groups)):
        if array.shape != (n,):
            raise ValueError(
                f"{path}: {name} must have shape ({n},) to match embeddings {embeddings.shape}, got {array.shape}"
            )
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: labels must be integers, got dtype {labels.dtype}")
    return arrays


def save_embeddings_npz(
    path: Path, embeddings: np.ndarray, labels: np.ndarray, groups: np.ndarray, group_attribute: str
) -> Path:
    """Write the embeddings file `load_embeddings_npz` reads (training's test embeddings, `audit --model`'s)."""
    with atomic_path(path, suffix=".npz") as temporary:
        np.savez(
            temporary,
            embeddings=np.asarray(embeddings, dtype=np.float32),
            labels=np.asarray(labels, dtype=np.int64),
            groups=np.asarray(groups, dtype=str),
            group_attribute=np.array(group_attribute),
        )
    return path
