"""Two facts every report writer needs, in one place: which values are finite numbers, and how a result
becomes strict JSON. No heavy imports (numpy and torch values are recognised by their `item`/`tolist`).

JSON has no NaN or infinity: `json.dumps` would write the non-standard `NaN` token, which other readers
reject, so an undefined figure is written as `null`.
"""

from __future__ import annotations

import math
from typing import Any


def _scalar(value: Any) -> Any:
    """A numpy or torch scalar (0-d) as the Python number it holds; anything else unchanged."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a finite number (numpy and torch scalars too, bools not), else None."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def strict_json(value: Any) -> Any:
    """NaN/inf → None, arrays → lists, numpy/torch scalars → Python numbers, keys → str, recursively."""
    if isinstance(value, dict):
        return {str(key): strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if getattr(value, "ndim", 0) and hasattr(value, "tolist"):
        return strict_json(value.tolist())
    value = _scalar(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
