"""No host-device sync per training step: the non-finite check stays on the device and is read every N steps.

On a GPU, `if tensor`, `.item()`, `.tolist()`, `float(tensor)` ... make the host wait for every queued
kernel. The CPU has no such wait, so these tests count the Python calls that would cause one: those made
by fairdml's code, and the progress bar's conversion of logged values to numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

import fairdml
from fairdml.callbacks.instantiate import instantiate_callbacks
from fairdml.config import compose_config, to_container
from fairdml.config_checks import config_problems
from fairdml.data.datamodule import DMLDataModule
from fairdml.models.embedding import save_embedding_model
from fairdml.models.module import DMLModule

FAIRDML_DIR = str(Path(fairdml.__file__).parent)
SYNCS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")


class SyncCounter:
    """Records (origin, method) of each sync-causing Tensor call made by fairdml or the progress bar."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in SYNCS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, getattr(torch.Tensor, name)))

    def _wrap(self, name: str, original):  # noqa: ANN001, ANN202
        def counted(tensor, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            origin = _origin(sys._getframe(1))
            if origin is not None:
                self.calls.append((origin, name))
            return original(tensor, *args, **kwargs)

        return counted


def _origin(frame) -> str | None:  # noqa: ANN001
    """`file:function` when fairdml's code made the call; `progress bar: <key>` when the progress bar
    converts a logged value (the key read from Lightning's result collection); else None."""
    if frame.f_code.co_filename.startswith(FAIRDML_DIR):
        return f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"
    key, in_progress_bar = None, False
    while frame is not None:
        name = frame.f_code.co_filename
        if name.endswith("result.py") and frame.f_code.co_name == "metrics" and "result_metric" in frame.f_locals:
            key = frame.f_locals["result_metric"].meta.name
        in_progress_bar = in_progress_bar or "callbacks/progress" in name
        frame = frame.f_back
    return f"progress bar: {key}" if in_progress_bar else None


def _tiny(tiny_overrides: list[str], *extra: str):  # noqa: ANN202
    cfg = compose_config([*tiny_overrides, *extra])
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    module = DMLModule.from_config(to_container(cfg), datamodule)
    return cfg, module, datamodule


def _trainer(steps: int, **kwargs) -> L.Trainer:  # noqa: ANN003
    options = {
        "max_steps": steps, "logger": False, "enable_checkpointing": False, "enable_progress_bar": True,
        "use_distributed_sampler": False, "num_sanity_val_steps": 0, "limit_val_batches": 0,
        "enable_model_summary": False, "log_every_n_steps": 1000, **kwargs,
    }  # fmt: skip
    return L.Trainer(**options)


@pytest.mark.parametrize("experiment", ["baseline", "parade"])
def test_training_steps_make_no_sync_between_periodic_reads(tiny_overrides, monkeypatch, experiment):
    every, steps = 3, 7
    cfg, module, datamodule = _tiny(
        tiny_overrides, f"experiment={experiment}", f"nonfinite_check_every={every}", "trainer.enable_progress_bar=true"
    )
    counter = SyncCounter()
    counter.install(monkeypatch)
    _trainer(steps, callbacks=instantiate_callbacks(cfg.callbacks)).fit(module, datamodule=datamodule)
    monkeypatch.undo()
    # allowed: the periodic read (one transfer per read: steps 3 and 6, and the epoch's end for step 7) and
    # the progress bar showing the loss that read left on the host
    reads = [call for call in counter.calls if call == ("step_guards.py:check", "tolist")]
    others = [call for call in counter.calls if call not in reads and call[0] != "progress bar: loss"]
    assert others == [], others
    assert len(reads) == steps // every + 1, counter.calls


def test_periodic_read_names_the_first_nonfinite_step(tiny_overrides):
    cfg, module, datamodule = _tiny(tiny_overrides, "nonfinite_check_every=3")

    def broken_at_step_4(host, step):  # noqa: ANN001, ANN202
        return {"broken": torch.tensor(float("nan") if host.global_step in (4, 5) else 0.0)}

    module.add_loss_term(broken_at_step_4)
    trainer = _trainer(10, enable_progress_bar=False)
    # 4 batches an epoch: epoch 0 ends with a read after step 3; the next read follows steps 4, 5, 6
    with pytest.raises(FloatingPointError, match=r"epoch 1, global step 4, batch 0; terms: \{'class': .*'broken': nan"):
        trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 7  # raised at that read, not at the end of the run


def test_no_checkpoint_of_nonfinite_weights(tiny_overrides, tmp_path):
    cfg, module, datamodule = _tiny(tiny_overrides, "nonfinite_check_every=50")
    module.add_loss_term(lambda host, step: {"broken": torch.tensor(float("nan") if host.global_step == 2 else 0.0)})
    checkpoints = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1, monitor=None)
    trainer = _trainer(6, enable_progress_bar=False, enable_checkpointing=True, callbacks=[checkpoints])
    with pytest.raises(FloatingPointError, match="global step 2, batch 2"):
        trainer.fit(module, datamodule=datamodule)
    saved = sorted(tmp_path.glob("*.ckpt"))
    assert len(saved) == 2, saved  # after steps 0 and 1; the save after the bad step 2 raised instead
    for path in saved:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path


def test_skip_policy_skips_exactly_the_bad_batch(tiny_overrides):
    cfg, module, datamodule = _tiny(tiny_overrides, "nan_policy=skip")
    module.add_loss_term(lambda host, step: {"broken": torch.tensor(float("nan") if host._batch == 2 else 0.0)})
    weights: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    class Watch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # noqa: ANN001, ANN202
            pl_module._batch = batch_idx
            weights[batch_idx] = (pl_module.model.head.linear.weight.detach().clone(),)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # noqa: ANN001, ANN202
            weights[batch_idx] += (pl_module.model.head.linear.weight.detach().clone(),)

    trainer = _trainer(4, enable_progress_bar=False, callbacks=[Watch()], limit_train_batches=5)
    trainer.fit(module, datamodule=datamodule)
    assert module.skipped_nonfinite == 1
    assert trainer.global_step == 4  # batches 0, 1, 3, 4 stepped
    assert torch.equal(*weights[2]) and not torch.equal(*weights[1]) and not torch.equal(*weights[3])


def test_check_interval_is_validated(tiny_overrides):
    problems = config_problems(compose_config([*tiny_overrides, "nonfinite_check_every=0"]))
    assert any(p.startswith("nonfinite_check_every=0: must be >= 1") for p in problems), problems


def test_compile_option_wraps_backbone_and_head_and_keeps_weight_names(tiny_overrides, monkeypatch, tmp_path):
    compiled = []

    def fake_compile(function, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        compiled.append(function.__self__)  # nn.Module.compile passes the module's bound _call_impl
        return function

    monkeypatch.setattr(torch, "compile", fake_compile)
    _, plain, _ = _tiny(tiny_overrides)
    _, module, _ = _tiny(tiny_overrides, "model.compile=true")
    assert compiled == [module.model.backbone, module.model.head]
    assert list(module.state_dict()) == list(plain.state_dict())
    assert not any("_orig_mod" in key for key in module.state_dict())
    path = save_embedding_model(module.model, tmp_path / "model.pt")
    exported = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert list(exported) == list(plain.model.state_dict())
    with torch.no_grad():
        module.eval()(torch.randn(2, 3, 32, 32))  # still callable through the (fake) compiled wrapper
