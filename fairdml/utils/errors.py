"""fairdml's own error types, in a module with no heavy imports (the CLI catches them before loading torch)."""

from __future__ import annotations


class ValidationSkippedError(RuntimeError):
    """A training epoch ended without the validation it was due (see callbacks/validation_guard.py)."""


class MitigationNotWiredError(RuntimeError):
    """A mitigation's loss term was never called, or its parameters are in no optimiser or get no gradient: it
    would silently change nothing (see mitigations/base.py::check_wired)."""
