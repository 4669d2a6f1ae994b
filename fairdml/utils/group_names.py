"""Names of intersectional (crossed) groups, one convention shared by the data, the metrics and the reports.

A crossed group names each attribute and its value, `Male=1|Pale_Skin=0`, so a report, a CSV row or a W&B key
says which intersection it is without a lookup table. The metrics recover each attribute's marginal groups
(`Male=1`, `Pale_Skin=0`) from these names alone, so an audit of a `.npz` whose groups follow the convention
gets its marginals too.
"""

from __future__ import annotations

from collections.abc import Sequence

SEPARATOR = "|"  # between the attributes of a crossed group (and of the crossed attribute's name)
EQUALS = "="  # between an attribute and its value
GAP = "gap"  # the gap's key among a metric's intervals, beside "overall" and the groups


def value_label(attribute: str, value_name: str) -> str:
    """The value as a crossed name shows it: a binary attribute's ("not_X", "X") as "0"/"1", others as named.

    Example:
        >>> value_label("Male", "not_Male"), value_label("Male", "Male"), value_label("style", "minority")
        ('0', '1', 'minority')
    """
    if value_name == attribute:
        return "1"
    if value_name == f"not_{attribute}":
        return "0"
    return value_name


def crossed_attribute_name(attributes: Sequence[str]) -> str:
    """The name of the crossed attribute of `attributes`, e.g. "Male|Pale_Skin"."""
    return SEPARATOR.join(attributes)


def crossed_group_name(attributes: Sequence[str], value_names: Sequence[str]) -> str:
    """One crossed group's name.

    Example:
        >>> crossed_group_name(["Male", "Pale_Skin"], ["Male", "not_Pale_Skin"])
        'Male=1|Pale_Skin=0'
    """
    return SEPARATOR.join(f"{a}{EQUALS}{value_label(a, v)}" for a, v in zip(attributes, value_names, strict=True))


def gap_key(attribute: str | None = None) -> str:
    """The key of a gap's interval in `report["intervals"][metric]`: "gap" for the groups the report compares,
    "gap:<attribute>" for an attribute's marginal groups (`attribute_of_gap_key` reads it back).

    Example:
        >>> gap_key(), gap_key("Male"), attribute_of_gap_key("gap:Male"), attribute_of_gap_key("Male=1")
        ('gap', 'gap:Male', 'Male', None)
    """
    return GAP if attribute is None else f"{GAP}:{attribute}"


def attribute_of_gap_key(key: str) -> str | None:
    """The attribute a marginal gap key names; None for any other key (a group, "overall", "gap")."""
    return key.removeprefix(f"{GAP}:") if key.startswith(f"{GAP}:") else None


def check_attribute_names(attributes: Sequence[str]) -> None:
    """Attribute names that can be crossed: no separator or "=" inside (the names must parse back)."""
    bad = [a for a in attributes if SEPARATOR in a or EQUALS in a]
    if bad:
        raise ValueError(f"attribute names {bad} contain {SEPARATOR!r} or {EQUALS!r}; they cannot be crossed")


def marginal_groups(names: Sequence[str]) -> dict[str, dict[str, list[int]]] | None:
    """For crossed group names, each attribute's marginal groups and the crossed group codes each one merges.

    None unless every name is `A=a|B=b|...` over the same two or more attributes in the same order: groups that
    do not follow the convention have no marginals.

    Example:
        >>> marginal_groups(["Male=0|Pale_Skin=0", "Male=0|Pale_Skin=1", "Male=1|Pale_Skin=0"])
        {'Male': {'Male=0': [0, 1], 'Male=1': [2]}, 'Pale_Skin': {'Pale_Skin=0': [0, 2], 'Pale_Skin=1': [1]}}
        >>> marginal_groups(["majority", "minority"]) is None
        True
    """
    parsed = [_parse(name) for name in names]
    if not parsed or any(p is None for p in parsed):
        return None
    attributes = [a for a, _ in parsed[0]]
    if len(attributes) < 2 or any([a for a, _ in p] != attributes for p in parsed):
        return None
    out: dict[str, dict[str, list[int]]] = {a: {} for a in attributes}
    for code, pairs in enumerate(parsed):
        for attribute, value in pairs:
            out[attribute].setdefault(f"{attribute}{EQUALS}{value}", []).append(code)
    return {a: dict(sorted(groups.items())) for a, groups in out.items()}


def _parse(name: str) -> list[tuple[str, str]] | None:
    pairs = []
    for part in str(name).split(SEPARATOR):
        attribute, equals, value = part.partition(EQUALS)
        if not equals or not attribute or not value:
            return None
        pairs.append((attribute, value))
    return pairs
