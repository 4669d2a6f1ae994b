"""Wall-clock seconds per stage of a report (kNN, clustering, geometry, ...), and live progress lines.

A long audit (100k samples: minutes) is silent otherwise, and a slow report cannot be fixed without knowing
which stage is slow. Code marks a stage with `with stage("knn"):`; nothing is recorded or printed unless a
caller opened `collect_stages()` (a {stage: seconds} dict, summed over repeated entries: NMI runs once
overall and once per group) or `listen_stages(callback)` (the audit CLI prints a line as each stage starts and
ends; `print_stages` turns that into one line per stage). Context variables, not globals, so nested or concurrent
reports keep their own.

Example:
    >>> with collect_stages() as seconds:
    ...     with stage("knn"):
    ...         pass
    >>> list(seconds)
    ['knn']
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

# The stage names the report and the audit use, in the order they run.
KNN, CLUSTERING, GEOMETRY, LEAKAGE, INTERVALS = "knn", "clustering", "geometry", "leakage", "intervals"
# The whole set's figures, then every group's (and marginal group's); their clustering and geometry run inside.
OVERALL, GROUPS = "overall", "groups"
# The audit's own: reading the .npz, writing report.json, the model card (card_pairs, its verification pairs
# and threshold counts, runs inside card).
READ, WRITE, CARD, CARD_PAIRS = "read", "write", "card", "card_pairs"

StageListener = Callable[[str, "float | None"], None]  # (stage, None) on entry; (stage, seconds) on exit

_collectors: ContextVar[tuple[dict[str, float], ...]] = ContextVar("fairdml_stage_collectors", default=())
_listeners: ContextVar[tuple[StageListener, ...]] = ContextVar("fairdml_stage_listeners", default=())


@contextlib.contextmanager
def collect_stages() -> Iterator[dict[str, float]]:
    """Yield a dict that receives {stage: seconds} of every stage run inside the block (nested blocks too)."""
    seconds: dict[str, float] = {}
    token = _collectors.set((*_collectors.get(), seconds))
    try:
        yield seconds
    finally:
        _collectors.reset(token)


@contextlib.contextmanager
def listen_stages(listener: StageListener) -> Iterator[None]:
    """Call `listener(stage, None)` as each stage inside the block starts and `(stage, seconds)` as it ends."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage `name` for every open collector and listener (free when there are none)."""
    collectors, listeners = _collectors.get(), _listeners.get()
    if not collectors and not listeners:
        yield
        return
    for listener in listeners:
        listener(name, None)
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        for seconds in collectors:
            seconds[name] = seconds.get(name, 0.0) + elapsed
        for listener in listeners:
            listener(name, elapsed)


def staged(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: every call of the function is timed as stage `name` (see `stage`)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            with stage(name):
                return function(*args, **kwargs)

        return timed

    return decorate


class _StageLines:
    """One line per top-level stage: "<prefix>: knn ..." when it starts, " done in 1.2 s" when it ends. Stages
    nested in another (the intervals' resampled kNN, the groups' clustering) count towards it, so an audit
    prints a handful of lines, not one per call. A line is finished before anything else can print."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.depth = prefix, 0

    def __call__(self, name: str, seconds: float | None) -> None:
        if seconds is None:
            self.depth += 1
            if self.depth == 1:
                print(f"{self.prefix}: {name} ...", end="", flush=True)
            return
        self.depth -= 1
        if self.depth == 0:
            print(f" done in {seconds:.1f} s", flush=True)


@contextlib.contextmanager
def print_stages(prefix: str = "fairdml audit") -> Iterator[None]:
    """Progress lines for the stages run inside the block, one per top-level stage (see `_StageLines`)."""
    with listen_stages(_StageLines(prefix)):
        yield
