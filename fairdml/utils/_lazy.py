"""PEP 562 lazy exports: `import fairdml` (and `fairdml --help`) stays fast, and importing a light module
such as `fairdml.metrics.spec` does not pull torch in through its package's `__init__`.

Hand-written because it is a dozen lines; `lazy_loader` (scientific-python) would be a dependency for them.
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
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        try:  # a subpackage or module, e.g. `fairdml.reports.to_frame` right after `import fairdml`
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{package}.{name}":
                raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return list(exports), __getattr__, __dir__
