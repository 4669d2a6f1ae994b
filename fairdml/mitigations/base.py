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

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import lightning as L
from lightning.pytorch.core.mixins import HyperparametersMixin
from torch import nn

from fairdml.utils.errors import MitigationNotWiredError
from fairdml.utils.nested import plain_values
from fairdml.utils.numbers import strict_json

if TYPE_CHECKING:  # defined by the host, DMLModule; a type only, so importing a mitigation does not load it
    from fairdml.models.module import LossTerm

REPORT_KEY = "mitigations"


@runtime_checkable
class MitigationHost(Protocol):
    """What a LightningModule offers mitigations; `fairdml.models.DMLModule` is one implementation.

    - `add_auxiliary(name, module, lr=None, loss=False)`: train `module` too (call it from a callback's
      `setup`, before optimisers exist); `lr` None means the host's own rate for heads, or for loss
      parameters when `loss`. Registered modules live in `auxiliary` (a ModuleDict, so checkpoints hold them).
    - `add_loss_term(term)`: every training step, `term(module, step)` returns named loss terms that the host
      adds to its loss, where `step = {"features": (B, F) backbone features, "embeddings": (B, D) class
      embeddings, "batch": the batch}`; the batch holds "label" (B,), "attributes" (B, A) and "index" (B,).
      Under mixed precision the step's tensors may be bf16/fp16 (the step runs under autocast): a term computes
      its statistics in float32 (`fairdml.models.precision`), and the host adds the terms in float32.
    - `test_step` returns `{"features", "embeddings"}` of the batch, for mitigations that measure at the test.
    - `feature_dim` (F) and `embedding_dim` (D); `reports`, a dict the mitigations' report entries go into
      (`reports["test"]["mitigations"][name]`).
    - only for the group-weighting mitigations (reweighted, worst_group): `weight_loss_terms(group_weights)`,
      which weights each term of the host's class loss by its anchor's group (`DMLModule.weight_loss_terms`).
      In a module of yours: build the loss with `fairdml.losses.create_loss(..., group_weightable=True)`, have
      `weight_loss_terms` call `fairdml.losses.set_group_weights(self.loss, group_weights)`, and call the loss
      inside `with self.loss.reducer.for_groups(group_codes):` (the batch's (B,) group codes).

    A mitigation checks its module with `require_host` in `setup`, which names every missing member.

    Args:
        none: a protocol, checked with `isinstance(module, MitigationHost)` or `require_host`.

    Example:
        >>> from fairdml import DMLModule
        >>> module = DMLModule(embedding_dim=32, num_classes=10, group_names=["a", "b"], group_attribute="style")
        >>> isinstance(module, MitigationHost), isinstance(L.LightningModule(), MitigationHost)
        (True, False)
        >>> module.add_auxiliary("probe", nn.Linear(module.feature_dim, 2))  # trained at optim.lr
        >>> list(module.auxiliary), module.embedding_dim
        (['probe'], 32)
    """

    auxiliary: nn.ModuleDict
    reports: dict[str, dict]
    feature_dim: int
    embedding_dim: int

    def add_auxiliary(self, name: str, module: nn.Module, lr: float | None = None, loss: bool = False) -> None: ...

    def add_loss_term(self, term: LossTerm) -> None: ...


_HOST_MEMBERS = ("auxiliary", "reports", "feature_dim", "embedding_dim", "add_auxiliary", "add_loss_term")


def require_host(pl_module: L.LightningModule, mitigation: str) -> MitigationHost:
    """`pl_module`, checked to meet the protocol; a TypeError names what it lacks (at `setup`, not mid-epoch)."""
    missing = [name for name in _HOST_MEMBERS if not hasattr(pl_module, name)]
    if missing:
        raise TypeError(
            f"{mitigation} needs a LightningModule that meets fairdml's MitigationHost protocol "
            f"(fairdml.mitigations.base); {type(pl_module).__name__} lacks {missing}"
        )
    return pl_module  # type: ignore[return-value]


class Mitigation(L.Callback, HyperparametersMixin):
    """Base class of fairdml's mitigations: call `self.save_hyperparameters()` in `__init__`.

    Override Lightning's hooks to act on training (register heads and loss terms through the module's
    `add_auxiliary` / `add_loss_term`, change the data module's sampling), and `measure` to report figures.
    A base shared by several mitigations, which is none itself, says so: `class Shared(Mitigation, abstract=True)`.

    Args:
        none here: a subclass's `__init__` arguments are its settings (`save_hyperparameters`).

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

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not abstract and (not cls.name or not cls.title or not cls.summary):
            raise TypeError(f"mitigation {cls.__qualname__} must set the class attributes name, title and summary")

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-ready (lists for tuples, None for NaN)."""
        return strict_json({key: plain_values(value) for key, value in self.hparams.items()})

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
        if not isinstance(reports, dict):
            return
        entry = self.describe(self.measure(trainer, pl_module))
        reports.setdefault("test", {}).setdefault(REPORT_KEY, {})[self.name] = entry


def check_wired(
    mitigation: str, pl_module: L.LightningModule, optimizers: list, modules: dict[str, nn.Module], term_calls: int
) -> None:
    """At the first optimiser step: the mitigation's loss term ran, and each of its modules' parameters is in an
    optimiser and got a gradient. Any of these missing means the mitigation changes nothing while the report
    would still describe it, so it fails here, naming what is missing and how to wire it.

    Raises:
        MitigationNotWiredError: one message listing every problem found.
    """
    host = type(pl_module).__name__
    problems = []
    if term_calls == 0:
        problems.append(
            f"{host}.training_step never called the loss term registered with add_loss_term: call each term with "
            f"(module, step) and add its values to the loss"
        )
    in_optimizer = {id(p) for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]}
    for name, module in modules.items():
        parameters = [p for p in module.parameters() if p.requires_grad]
        if any(id(p) not in in_optimizer for p in parameters):
            problems.append(
                f"the parameters of {name} are in no optimiser: configure_optimizers must include the modules "
                f"add_auxiliary registered (e.g. self.auxiliary.parameters())"
            )
        elif term_calls and parameters and all(p.grad is None for p in parameters):
            problems.append(f"{name} got no gradient: the loss term's values are computed but not added to the loss")
    if problems:
        what = "; ".join(problems)
        raise MitigationNotWiredError(f"{mitigation} is not wired into {host}, so it would change nothing: {what}")
