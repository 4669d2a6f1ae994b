"""PEP 562 lazy exports: `import fairdml` (and `fairdml --help`) stays fast, and importing a light module
such as `fairdml.metrics.spec` does not pull torch in through its package's `__init__`.

Hand-written because it is eight lines; `lazy_loader` (scientific-python) would be a dependency for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, modules: dict[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for `package`; `modules` maps each module to its public names."""
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return list(exports), __getattr__, __dir__
