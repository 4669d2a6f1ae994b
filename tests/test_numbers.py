"""The one strict-JSON and finite-number helper every report writer uses (fairdml/utils/numbers.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fairdml.utils.numbers import finite_number, strict_json


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0), (0.5, 0.5), (np.float32(0.25), 0.25), (np.int64(3), 3.0), (torch.tensor(2.0), 2.0),
        (float("nan"), None), (float("inf"), None), (np.float64("nan"), None), (torch.tensor(float("inf")), None),
        (True, None), ("0.5", None), (None, None), ([1.0], None), (np.ones(2), None),
    ],
)  # fmt: skip
def test_finite_number(value, expected):
    assert finite_number(value) == expected


def test_strict_json_makes_valid_json_of_numpy_torch_and_nan():
    value = {
        1: float("nan"), "a": (np.float32(0.5), np.int64(2), torch.tensor(3.0)), "b": np.array([[1.0, np.inf]]),
        "c": torch.tensor([float("-inf"), 1.0]), "d": {"e": [True, None, "x"]},
    }  # fmt: skip
    out = strict_json(value)
    assert out == {"1": None, "a": [0.5, 2, 3.0], "b": [[1.0, None]], "c": [None, 1.0], "d": {"e": [True, None, "x"]}}
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert all(type(v) in (float, int) for v in out["a"]) and not math.isnan(out["a"][0])
