"""What only a person can write in a model card (intended use, ethics...), read from a YAML file.

Template: configs/card/card_inputs.yaml. A field left empty becomes a marked "To fill in" prompt, so an
unfinished card says so instead of pretending.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = "configs/card/card_inputs.yaml"


@dataclass
class VerificationSettings:
    """How the threshold view samples and scores pairs (see fairdml.metrics.functional.thresholds)."""

    target_fmr: float = 0.01  # operating threshold: the loosest one whose pooled FMR is at most this
    operating_threshold: float | None = None  # or a fixed cosine similarity threshold
    max_pairs_per_group: int = 5000  # cap on genuine and on impostor pairs, per group
    seed: int = 0
    resolution: int = 1000  # slider grid: thresholds k / resolution


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
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of card fields, got {type(values).__name__}")
    values = {k: v for k, v in values.items() if v is not None}
    verification = values.pop("verification", None) or {}
    if not isinstance(verification, dict):
        raise ValueError(f"{path}: 'verification' must be a mapping of {TEMPLATE}'s verification keys")
    inputs = _from_mapping(CardInputs, values, str(path))
    inputs.verification = _from_mapping(VerificationSettings, verification, f"{path} (verification)")
    return inputs
