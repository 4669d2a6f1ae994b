"""Nested mappings (configs, reports) read by dotted key paths. No heavy imports: the card and the CLI use it.

`dotted_keys` turns a tree into one level (a config diff on resume, the settings `fairdml compare` tells runs
apart by, the card's figures of unknown shape); `get_path` reads one leaf of a tree that may lack it;
`plain_values` makes a tree's tuples lists (settings that read the same in JSON and in the card).
"""

from __future__ import annotations

from typing import Any


def dotted_keys(tree: Any, sep: str = ".") -> dict[str, Any]:
    """Nested dicts as one dict with `sep`-joined keys; lists stay values (they are one setting, e.g. `data.split`).

    >>> dotted_keys({"parade": {"enabled": True, "strength": 4.0}, "seed": 0})
    {'parade.enabled': True, 'parade.strength': 4.0, 'seed': 0}

    A non-dict is its own leaf, under the key "".
    """
    return _dotted_keys(tree, "", sep)


def _dotted_keys(tree: Any, prefix: str, sep: str) -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_dotted_keys(value, f"{prefix}{sep}{key}" if prefix else str(key), sep))
    return flat


def get_path(mapping: Any, dotted: str, default: Any = None) -> Any:
    """`mapping["a"]["b"]` for "a.b", or `default` when any level is missing (or `mapping` is not a dict).

    >>> get_path({"model": {"embedding_dim": 128}}, "model.embedding_dim")
    128
    """
    for key in dotted.split("."):
        if not isinstance(mapping, dict) or key not in mapping:
            return default
        mapping = mapping[key]
    return mapping


def plain_values(value: Any) -> Any:
    """Tuples as lists and keys as strings, nested, so settings read the same in JSON and in the card.

    >>> plain_values({"ks": (1, 4), 2: ("a",)})
    {'ks': [1, 4], '2': ['a']}
    """
    if isinstance(value, tuple | list):
        return [plain_values(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain_values(item) for key, item in value.items()}
    return value
