"""What only a person can write in a model card (intended use, ethics...), read from a YAML file.

Template: configs/card/card_inputs.yaml. A field left empty becomes a marked "To fill in" prompt, so an
unfinished card says so instead of pretending.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fairdml.utils.config_files import yaml_error_line

TEMPLATE = "configs/card/card_inputs.yaml"


@dataclass(frozen=True)
class NumberRange:
    """The values a numeric input may take; a wrong one fails at load, naming key, file and value, instead of
    giving a card with a meaningless threshold (e.g. target_fmr 5 meets every threshold)."""

    low: float
    high: float = math.inf
    integer: bool = False
    open_low: bool = False
    open_high: bool = False
    optional: bool = False  # None allowed
    meaning: str = ""

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if math.isinf(self.high):
            return f"{kind} {'>' if self.open_low else '>='} {self.low:g}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"{kind} in {left}{self.low:g}, {self.high:g}{right}"

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        numeric = numbers.Integral if self.integer else numbers.Real  # numpy scalars too
        if isinstance(value, bool) or not isinstance(value, numeric) or not math.isfinite(value):
            return False
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below


VERIFICATION_RANGES = {
    "target_fmr": NumberRange(0, 1, open_low=True, open_high=True, meaning="a false match rate, e.g. 0.01 for 1%"),
    "operating_threshold": NumberRange(-1, 1, optional=True, meaning="a cosine similarity, or null"),
    "max_pairs_per_group": NumberRange(1, integer=True, meaning="pairs of each kind sampled per group"),
    "seed": NumberRange(0, integer=True, meaning="numpy seeds are non-negative"),
    # the page embeds counts for about 2 * resolution thresholds per group: more would only bloat it
    "resolution": NumberRange(1, 100_000, integer=True, meaning="slider steps per unit of similarity"),
}


def check_numbers(values: dict[str, Any], ranges: dict[str, NumberRange], where: str, prefix: str = "") -> None:
    """Raise a ValueError naming `where` (the file), the key, the allowed range and the value given."""
    for key, allowed in ranges.items():
        if key not in values or allowed.accepts(values[key]):
            continue
        value = values[key]
        meaning = f" ({allowed.meaning})" if allowed.meaning else ""
        hint = ""
        if key == "target_fmr" and isinstance(value, (int, float)) and 1 <= value < 100:
            hint = f"; a percentage? write {value / 100:g} for {value:g}%"
        raise ValueError(f"{where}: {prefix}{key} must be {allowed.describe()}{meaning}, got {value!r}{hint}")


@dataclass
class VerificationSettings:
    """How the threshold view samples and scores pairs (see fairdml.metrics.functional.thresholds).

    Every number is range-checked (VERIFICATION_RANGES) on construction and, naming the file, at load.
    """

    target_fmr: float = 0.01  # operating threshold: the loosest one whose pooled FMR is at most this
    operating_threshold: float | None = None  # or a fixed cosine similarity threshold
    max_pairs_per_group: int = 5000  # cap on genuine and on impostor pairs, per group
    seed: int = 0
    resolution: int = 1000  # slider grid: thresholds k / resolution

    def __post_init__(self) -> None:
        check_numbers(dataclasses.asdict(self), VERIFICATION_RANGES, "VerificationSettings")


@dataclass
class CardInputs:
    """Fields only a person can fill; None shows a marked prompt in the card."""

    model_name: str | None = None
    description: str | None = None
    developers: str | None = None
    license: str | None = None  # a Hugging Face licence id, e.g. apache-2.0
    contact: str | None = None
    citation: str | None = None
    intended_uses: str | list[str] | None = None
    intended_users: str | list[str] | None = None
    out_of_scope_uses: str | list[str] | None = None
    relevant_factors: str | list[str] | None = None
    ethical_considerations: str | list[str] | None = None
    caveats_and_recommendations: str | list[str] | None = None
    datasets: list[str] | None = None  # Hugging Face dataset ids, for the metadata only
    verification: VerificationSettings = field(default_factory=VerificationSettings)


PROMPTS = {
    "description": "One paragraph: what the model does, for whom, how it is used (e.g. 1:1 verification).",
    "developers": "Who built the model (person or organisation).",
    "license": "The licence of the weights (a Hugging Face licence id, e.g. apache-2.0).",
    "contact": "Where to send questions and reports of problems.",
    "intended_uses": "Primary intended uses: the tasks and settings the model was built and evaluated for.",
    "intended_users": "Primary intended users.",
    "out_of_scope_uses": "Uses the model must not be put to (e.g. identifying people without consent).",
    "relevant_factors": "Factors beyond the evaluated groups that may change performance in deployment "
    "(image quality, lighting, camera, pose, age...).",
    "ethical_considerations": "Sensitive data used, risks to people, mitigations taken (e.g. PARADE), "
    "and the harms that remain.",
    "caveats_and_recommendations": "What this evaluation does not cover, and advice to users (e.g. "
    "re-evaluate on the deployment population, per-group thresholds).",
}


def _from_mapping(cls: type, values: dict, where: str) -> Any:
    """Build dataclass `cls` from a mapping; unknown keys are an error that lists the valid ones."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {names}")
    return cls(**values)


def load_card_inputs(path: str | os.PathLike | None) -> CardInputs:
    """Read the user's card inputs YAML (None: every person-only field is a prompt)."""
    if path is None:
        return CardInputs()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"card inputs file not found: {path} (template: {TEMPLATE})")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(yaml_error_line(error, path)) from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of card fields, got {type(values).__name__}")
    values = {k: v for k, v in values.items() if v is not None}
    verification = values.pop("verification", None) or {}
    if not isinstance(verification, dict):
        raise ValueError(f"{path}: 'verification' must be a mapping of {TEMPLATE}'s verification keys")
    verification = {k: v for k, v in verification.items() if v is not None}  # empty = the default
    inputs = _from_mapping(CardInputs, values, str(path))
    check_numbers(verification, VERIFICATION_RANGES, str(path), prefix="verification.")
    inputs.verification = _from_mapping(VerificationSettings, verification, f"{path} (verification)")
    return inputs
