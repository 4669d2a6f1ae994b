"""The threshold view's numbers, computed once in Python (fairdml.metrics.functional.thresholds).

The page receives integer error counts per group at every slider threshold and only divides them, so what
it shows equals these numbers exactly (tests/reports/test_card_browser.py checks it in Chromium).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from fairdml.metrics.functional import thresholds as th
from fairdml.reports.card.inputs import VerificationSettings
from fairdml.utils.numbers import strict_json

DET_TICKS = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99)  # rates marked on the DET axes


@dataclass
class Verification:
    """Counts on the slider grid, the operating threshold, and the per-group equal-FMR thresholds."""

    settings: VerificationSettings
    pairs: th.PairSample
    counts: th.ErrorCounts
    operating_index: int
    rates: dict[str, dict[str, Any]]  # per group at the operating threshold (th.rates_at_index)
    equal_fmr: dict[str, Any]  # th.equal_fmr_thresholds at the operating threshold

    @property
    def operating_threshold(self) -> float:
        return float(self.counts.thresholds[self.operating_index])


def compute_verification(arrays: dict[str, np.ndarray], settings: VerificationSettings) -> Verification:
    """Sample pairs per group, count errors on the threshold grid, and pick the operating threshold."""
    pairs = th.sample_pairs(arrays["labels"], arrays["groups"], settings.max_pairs_per_group, settings.seed)
    counts = th.pair_error_counts(arrays["embeddings"], pairs, resolution=settings.resolution)
    if settings.operating_threshold is not None:
        index = int(np.searchsorted(counts.thresholds, settings.operating_threshold, side="left"))
    else:
        index = int(th.index_at_fmr(counts.pooled(), settings.target_fmr)[0])
    index = min(max(index, 0), len(counts.thresholds) - 1)
    return Verification(
        settings=settings,
        pairs=pairs,
        counts=counts,
        operating_index=index,
        rates=th.rates_at_index(counts, index),
        equal_fmr=th.equal_fmr_thresholds(counts, index),
    )


def rate_gap(values: dict[str, float]) -> dict[str, Any]:
    """Error-rate gap between groups: max − min, max / min, and the worst (first highest-rate) group.

    Same rule as setGap in assets/card.js, so the static tables and the live view agree.
    """
    defined = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if not defined:
        return {"max_minus_min": None, "max_over_min": None, "worst_group": None}
    worst = max(defined, key=defined.__getitem__)
    low, high = min(defined.values()), max(defined.values())
    return {
        "max_minus_min": high - low,
        "max_over_min": high / low if low > 0 else None,
        "worst_group": worst,
    }


def view_data(verification: Verification) -> dict[str, Any]:
    """The browser's data: integer counts per grid threshold (the page divides them itself)."""
    data = browser_data(verification.counts, verification.operating_index)
    inverse = NormalDist().inv_cdf  # JavaScript has no inverse normal CDF: DET ticks are placed here
    data["det_ticks"] = [[tick, inverse(tick)] for tick in DET_TICKS]
    data["target_fmr"] = verification.settings.target_fmr
    return data


def verification_summary(verification: Verification, view: dict | None) -> dict[str, Any]:
    """Everything the view shows, for the sidecar JSON (model_card_data.json)."""
    counts, pairs, equal = verification.counts, verification.pairs, verification.equal_fmr
    return {
        "settings": dataclasses.asdict(verification.settings),
        "operating_index": verification.operating_index,
        "operating_threshold": verification.operating_threshold,
        "rates_at_operating_threshold": verification.rates,
        "equal_fmr": {
            "target_fmr": equal["target_fmr"],
            "groups": {
                name: {"threshold": equal["threshold"][g], "fmr": equal["fmr"][g], "fnmr": equal["fnmr"][g]}
                for g, name in enumerate(counts.group_names)
            },
        },
        "pairs": {
            name: {
                "genuine": int(counts.genuines[g]),
                "impostor": int(counts.impostors[g]),
                "available_genuine": int(pairs.available_genuine[g]),
                "available_impostor": int(pairs.available_impostor[g]),
            }
            for g, name in enumerate(counts.group_names)
        },
        "grid": view,
    }


def _json_floats(values: np.ndarray, digits: int) -> list[float | None]:
    """Floats for JSON, NaN as null, rounded (only for drawing the DET curves, never for displayed rates)."""
    return [None if v is None else round(v, digits) for v in strict_json(np.asarray(values, dtype=np.float64))]


def browser_data(counts: th.ErrorCounts, operating_index: int, det_floor: float = 1e-4) -> dict[str, Any]:
    """JSON-ready data for the card's threshold view: integer counts per group at every grid threshold.

    The page divides the counts itself, so every rate it shows equals `counts.fmr`/`counts.fnmr` exactly.
    DET coordinates (normal deviates) are precomputed here since JavaScript has no inverse normal CDF.
    """
    points = th.roc_det_points(counts, det_floor)
    pooled = counts.pooled()
    pooled_points = th.roc_det_points(pooled, det_floor)[pooled.group_names[0]]
    groups = []
    for g, name in enumerate(counts.group_names):
        groups.append(
            {
                "name": name,
                "impostors": int(counts.impostors[g]),
                "genuines": int(counts.genuines[g]),
                "false_matches": counts.false_matches[g].tolist(),
                "false_non_matches": counts.false_non_matches[g].tolist(),
                "det_fmr": _json_floats(points[name]["det_fmr"], 4),
                "det_fnmr": _json_floats(points[name]["det_fnmr"], 4),
            }
        )
    return {
        "thresholds": counts.thresholds.tolist(),
        "operating_index": int(operating_index),
        "z": th.Z_95,
        "det_floor": det_floor,
        "groups": groups,
        "pooled": {
            "impostors": int(pooled.impostors[0]),
            "genuines": int(pooled.genuines[0]),
            "false_matches": pooled.false_matches[0].tolist(),
            "false_non_matches": pooled.false_non_matches[0].tolist(),
            "det_fmr": _json_floats(pooled_points["det_fmr"], 4),
            "det_fnmr": _json_floats(pooled_points["det_fnmr"], 4),
        },
    }
