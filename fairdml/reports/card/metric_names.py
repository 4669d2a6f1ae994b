"""The card's view of metric names: label and definition from each report metric's `MetricSpec`, plus the
verification rates (FMR/FNMR, computed for the card's threshold view, not report metrics)."""

from __future__ import annotations

from fairdml.metrics.spec import higher_is_better, metric_spec

VERIFICATION_INFO = {
    "fmr": ("FMR", "false match rate: share of impostor pairs (different classes) that match"),
    "fnmr": ("FNMR", "false non-match rate: share of genuine pairs (same class) that do not match"),
}


def metric_info(metric: str) -> tuple[str, str]:
    """(label, definition) of a metric key; unknown keys label themselves with no definition."""
    spec = metric_spec(metric)
    if spec is not None:
        return spec.label, spec.definition
    return VERIFICATION_INFO.get(metric, (metric, ""))


def metric_header(metric: str) -> str:
    """Table header: the label with the direction that is better (↑ or ↓)."""
    arrow = "↑" if higher_is_better(metric) else "↓"
    return f"{metric_info(metric)[0]} {arrow}"
