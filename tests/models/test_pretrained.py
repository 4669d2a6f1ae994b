"""`model.pretrained=true`: timm's own hub download and cache, tested without a download.

huggingface_hub reads `HF_HUB_OFFLINE` and `HF_HOME` when it is imported, so the in-process tests set its
`constants` instead, and one subprocess test sets the real environment variables. A socket guard records
any connection attempt: offline mode must fail before the network, not after a timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from helpers.tiny import TINY_OVERRIDES
from huggingface_hub import constants as hub_constants
from safetensors.torch import save_file

from fairdml.config import compose_config, to_container
from fairdml.config_checks import check_config
from fairdml.models.backbones import create_backbone
from fairdml.models.module import DMLModule

BACKBONE = "test_resnet"
HUB_ID = timm.models.get_pretrained_cfg(BACKBONE).hf_hub_id  # timm/test_resnet.r160_in1k
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"  # any commit hash: the cache is keyed by it


@pytest.fixture
def connections(monkeypatch) -> list:
    """Every name lookup and socket connection attempted during the test (refused)."""
    attempts: list = []

    def refuse(address):
        attempts.append(address)
        raise OSError(f"test: network blocked ({address})")

    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: refuse(host))
    monkeypatch.setattr(socket.socket, "connect", lambda self, address, *args: refuse(address))
    return attempts


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """HF_HUB_OFFLINE=1 with an empty cache at `<tmp>/hub` (what `HF_HOME=<tmp>` gives)."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_weights(cache: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """Lay out a hub cache entry as `hf_hub_download` leaves it: refs/main -> snapshots/<hash>/file."""
    repo = cache / f"models--{HUB_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    (repo / "snapshots" / SNAPSHOT).mkdir(parents=True)
    save_file(state_dict, str(repo / "snapshots" / SNAPSHOT / "model.safetensors"))


def reference_weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(7)
    return {k: v.contiguous() for k, v in timm.create_model(BACKBONE, pretrained=False).state_dict().items()}


def test_offline_without_cache_is_one_line_and_never_connects(offline_hub, connections):
    with pytest.raises(FileNotFoundError) as error:
        create_backbone(BACKBONE, pretrained=True)
    message = str(error.value)
    assert "\n" not in message
    for part in ("model.pretrained=true", repr(BACKBONE), HUB_ID, "HF_HUB_OFFLINE", str(offline_hub)):
        assert part in message
    for remedy in ("connect", "HF_HOME", "model.pretrained_path=FILE"):
        assert remedy in message
    assert connections == []


def test_pretrained_true_loads_the_cached_copy(offline_hub, connections):
    weights = reference_weights()
    cache_weights(offline_hub, weights)
    cfg = compose_config([*TINY_OVERRIDES, "model.pretrained=true"])
    module = DMLModule(to_container(cfg), num_classes=30, group_names=["a", "b"], group_attribute="style")
    loaded = module.model.backbone.state_dict()
    assert set(loaded) == set(weights) - {"fc.weight", "fc.bias"}  # num_classes=0: timm drops the classifier
    for key, value in loaded.items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0, msg=key)
    assert connections == []


def test_default_is_random_init_and_downloads_nothing(offline_hub, connections):
    torch.manual_seed(0)
    backbone = create_backbone(BACKBONE)
    assert not torch.equal(backbone.conv1[0].weight, reference_weights()["conv1.0.weight"])
    assert connections == []


@pytest.mark.parametrize("model", ["tiny", "resnet18", "resnet50"])
def test_model_configs_default_to_no_download(model):
    cfg = compose_config([f"model={model}"])
    assert cfg.model.pretrained is False and cfg.model.pretrained_path is None


def test_both_weight_sources_are_refused_in_one_line(tmp_path):
    weights = tmp_path / "w.safetensors"
    cfg = compose_config(["model.pretrained=true", f"model.pretrained_path={weights}"])
    with pytest.raises(ValueError, match="model.pretrained=true and model.pretrained_path") as error:
        check_config(cfg)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="choose one weight source"):
        create_backbone(BACKBONE, str(weights), pretrained=True)


def test_model_without_pretrained_weights_is_named():
    name = next(n for n in timm.list_models("cspresnet*") if not timm.is_model_pretrained(n))
    with pytest.raises(ValueError, match=f"no pretrained weights for backbone '{name}'"):
        create_backbone(name, pretrained=True)


def test_cli_offline_prints_one_line_without_network(tmp_path):
    """The real environment variables, in a fresh process: HF_HUB_OFFLINE=1 and an empty HF_HOME."""
    guard = (
        "import socket, sys\n"
        "def refuse(address):\n"
        "    print(f'NETWORK ATTEMPT {address}', file=sys.stderr); raise OSError('blocked')\n"
        "socket.getaddrinfo = lambda host, *args, **kwargs: refuse(host)\n"
        "socket.socket.connect = lambda self, address, *args: refuse(address)\n"
        "from fairdml.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    overrides = [*TINY_OVERRIDES, "model.pretrained=true", f"output_dir={tmp_path / 'out'}"]
    env = {**_base_env(), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", guard, "train", *overrides], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "NETWORK ATTEMPT" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("fairdml train: error: model.pretrained=true: backbone 'test_resnet' needs its weights")
    assert f"the cache {tmp_path / 'hf' / 'hub'} has no copy" in last


def _base_env() -> dict[str, str]:
    """The test process's environment without any Hugging Face setting of the machine running the tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
