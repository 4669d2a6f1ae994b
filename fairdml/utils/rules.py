"""The vocabulary of value checks: a `Rule` names a setting, a test of its value and the valid range as an error
says it, so every range error reads the same way, "key=value: must be <range>".

The training config's checks (`fairdml.config_rules`, `fairdml.models.config_rules`) and the mitigations'
option checks (PARADE's `mitigations/parade_objectives.py`) state their ranges with these. No fairdml layer
here: the checks that build a run's parts are `fairdml.config_checks`.

Example:
    >>> rule = Rule("optim.lr", above(0), "> 0")
    >>> rule.valid(0.1), rule.valid(0), rule.valid(float("nan")), rule.valid("0.1")
    (True, False, False, False)
    >>> between(0, 1, low_open=True)(0), optional(at_least(1))(None), either(["a", "b", "c"])
    (False, True, 'a, b or c')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fairdml.utils.numbers import finite_number


@dataclass(frozen=True)
class Rule:
    key: str
    valid: Callable[[Any], bool]
    expected: str  # the valid range, as the error says it


def _number(value: Any) -> bool:
    return finite_number(value) is not None


def at_least(low: float) -> Callable[[Any], bool]:
    return lambda v: _number(v) and v >= low


def above(low: float) -> Callable[[Any], bool]:
    return lambda v: _number(v) and v > low


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return _number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return check


def one_of(*choices: Any) -> Callable[[Any], bool]:
    return lambda v: v in choices


def either(names: Any) -> str:
    """The valid names as the error says them: "a, b or c"."""
    names = [str(name) for name in names]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def rule_problems(values: Mapping[str, Any], rules: Iterable[Rule]) -> list[str]:
    """ "key=value must be <range>" for each rule whose value in `values` is invalid, in the rules' order."""
    return [f"{r.key}={values[r.key]!r} must be {r.expected}" for r in rules if not r.valid(values[r.key])]
