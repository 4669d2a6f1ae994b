"""Read an offline W&B run (`run-<id>.wandb`) without syncing it: history rows, config and summary.

Why: wandb 0.31 writes offline runs only as this record log (no `wandb-summary.json`) and ships no Python
reader, yet tests and users want to check what a run logged before `wandb sync`. The file is W&B's
7-byte header followed by LevelDB-log framed records (32 KiB blocks; chunk header: CRC32C u32, length u16,
type u8: 1 full, 2 first, 3 middle, 4 last), each record a `wandb_internal_pb2.Record` protobuf.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_FILE_HEADER = b":W&B"
_FILE_HEADER_LENGTH = 7
_BLOCK_LENGTH = 32768
_CHUNK_HEADER = struct.Struct("<IHB")
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> Iterator[bytes]:
    if not data.startswith(_FILE_HEADER):
        raise ValueError("not a W&B transaction log: it does not start with ':W&B'")
    position, pending = _FILE_HEADER_LENGTH, b""
    while position + _CHUNK_HEADER.size <= len(data):
        left_in_block = _BLOCK_LENGTH - position % _BLOCK_LENGTH
        if left_in_block < _CHUNK_HEADER.size:  # block trailer padding
            position += left_in_block
            continue
        _, length, kind = _CHUNK_HEADER.unpack_from(data, position)
        start = position + _CHUNK_HEADER.size
        position = start + length
        if kind == 0:  # zero padding at the end of a block or file
            continue
        pending = data[start:position] if kind in (_FULL, _FIRST) else pending + data[start:position]
        if kind in (_FULL, _LAST):
            yield pending
            pending = b""


def read_records(path: str | Path) -> Iterator[Any]:
    """Every protobuf record of a `.wandb` file, in order."""
    from wandb.proto import wandb_internal_pb2

    for payload in _payloads(Path(path).read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def _items(items: Any) -> dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def find_run_file(run_dir: str | Path) -> Path:
    """The newest `run-*.wandb` under a fairdml run folder's `wandb/` (or under the given W&B run folder)."""
    files = sorted(Path(run_dir).glob("**/run-*.wandb"), key=lambda path: path.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"no W&B run file (run-*.wandb) under {run_dir}")
    return files[-1]


def read_offline_run(path: str | Path) -> dict[str, Any]:
    """`{"id", "history": [row, ...], "config": {...}, "summary": {...}}` of one offline run file."""
    path = find_run_file(path) if Path(path).is_dir() else Path(path)
    run: dict[str, Any] = {"id": None, "history": [], "config": {}, "summary": {}}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["id"] = record.run.run_id
            run["config"].update(_items(record.run.config.update))
        elif kind == "config":
            run["config"].update(_items(record.config.update))
        elif kind == "history":
            run["history"].append(_items(record.history.item))
        elif kind == "summary":
            run["summary"].update(_items(record.summary.update))
    return run
