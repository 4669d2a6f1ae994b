"""The mitigation plugin: a Lightning callback that changes training for fairness and says what it did.

A mitigation is an ordinary `L.Callback` (so it composes with any Trainer, from a config's `callbacks:` group
or in Python) plus three facts the report and the model card need: `name` (its key in
`report["mitigations"]`), `title` and `summary` (the card's heading and one-paragraph explanation). Its
settings are its `__init__` arguments, recorded by `save_hyperparameters()` as a LightningModule's are, so
the signature is the one schema: the config, the report and the card cannot disagree about them.

At the end of the test it writes `report["mitigations"][name] = {"title", "summary", "settings"[, "measured"]}`
into the module's test report; `measure` adds figures only the mitigation can compute (PARADE's held-out
de-correlation). The card loops over these entries, so a new mitigation needs no card code.
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
from lightning.pytorch.core.mixins import HyperparametersMixin

from fairdml.numbers import strict_json

REPORT_KEY = "mitigations"


class Mitigation(L.Callback, HyperparametersMixin):
    """Base class of fairdml's mitigations: call `self.save_hyperparameters()` in `__init__`.

    Override Lightning's hooks to act on training (register heads and loss terms through the module's
    `add_auxiliary` / `add_loss_term`, change the data module's sampling), and `measure` to report figures.

    Example:
        >>> class Nothing(Mitigation):
        ...     name, title, summary = "nothing", "Nothing", "Changes nothing; an example."
        ...     def __init__(self, level: int = 1):
        ...         super().__init__()
        ...         self.save_hyperparameters()
        >>> Nothing(level=2).describe()
        {'title': 'Nothing', 'summary': 'Changes nothing; an example.', 'settings': {'level': 2}}
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.name or not cls.title or not cls.summary:
            raise TypeError(f"mitigation {cls.__qualname__} must set the class attributes name, title and summary")

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-ready (lists for tuples, None for NaN)."""
        return strict_json({key: _plain(value) for key, value in self.hparams.items()})

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        """Figures measured at the end of the test (None: nothing to add)."""
        return None

    def describe(self, measured: dict[str, Any] | None = None) -> dict[str, Any]:
        """This mitigation's entry in `report["mitigations"]`."""
        entry: dict[str, Any] = {"title": self.title, "summary": self.summary, "settings": self.settings()}
        if measured is not None:
            entry["measured"] = strict_json(measured)
        return entry

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        reports = getattr(pl_module, "reports", None)
        if not isinstance(reports, dict) or "test" not in reports:
            return
        entry = self.describe(self.measure(trainer, pl_module))
        reports["test"].setdefault(REPORT_KEY, {})[self.name] = entry


def _plain(value: Any) -> Any:
    """Tuples as lists, nested, so the settings read the same in JSON and in the card."""
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value
