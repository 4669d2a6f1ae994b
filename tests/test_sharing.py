"""Sharing a model: `fairdml export` writes model.safetensors + config.json (timm's layout) beside model.pt, the
folder loads back to the same model without unpickling, and `fairdml card RUN --push REPO_ID` sends the card
and the weights to the Hugging Face Hub in one commit, or fails in one line leaving nothing behind.

The Hub is a fake standing in for `huggingface_hub.HfApi` (the client's boundary): no test touches the network.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pickle
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import safetensors
import timm
import torch
import yaml
from helpers.cli import cli_error
from helpers.tiny import TINY_OVERRIDES
from huggingface_hub import CommitInfo, ModelCard, RepoUrl
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.errors import HTTPError as ClientHTTPError

import fairdml
from fairdml.cli import main
from fairdml.config import compose_config
from fairdml.export import export_run
from fairdml.models.embedding import EmbeddingModel, load_embedding_model
from fairdml.models.hub_folder import CONFIG_FILE, WEIGHTS_FILE, load_hub_folder
from fairdml.reports.hub import UPLOADED
from fairdml.train import run_training

PARADE = ["experiment=parade", "callbacks.parade.projection_hidden=16", "callbacks.parade.attribute_embedding_dim=8"]
REPO_ID = "someone/fair-digits"


@pytest.fixture(scope="module")
def parade_run(tmp_path_factory) -> Path:
    """A finished 1-epoch PARADE run (its checkpoint holds attribute heads), shared read-only: copy to change it."""
    base = tmp_path_factory.mktemp("sharing")
    overrides = [*TINY_OVERRIDES, *PARADE, f"output_dir={base / 'outputs'}", "evaluation.model_card=false"]
    return run_training(compose_config([*overrides, f"run_dir={base / 'run'}"]))


@pytest.fixture
def exported(parade_run, tmp_path) -> Path:
    """The run exported to a folder: model.pt, model.safetensors, config.json."""
    export_run(str(parade_run), str(tmp_path / "shared"))
    return tmp_path / "shared"


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def _images() -> torch.Tensor:
    return torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# -- export: the timm-style folder --------------------------------------------------------------------------
def test_safetensors_folder_loads_back_to_the_same_model(parade_run, tmp_path, capsys, monkeypatch):
    main(["export", str(parade_run), "--out", str(tmp_path / "shared")])
    printed = capsys.readouterr().out
    assert {p.name for p in (tmp_path / "shared").iterdir()} == {"model.pt", WEIGHTS_FILE, CONFIG_FILE}
    load_line = next(line for line in printed.splitlines() if "load it back with: " in line)
    # the printed call runs as shown, and loads without unpickling anything (safetensors + JSON only)
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load"))
    namespace: dict = {}
    exec(load_line.split("load it back with: ", 1)[1], namespace)
    monkeypatch.undo()
    model, tested = namespace["model"], load_embedding_model(parade_run / "model.pt")
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(_images()), tested(_images()), rtol=0, atol=0)
    for name, tensor in tested.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_config_json_says_how_to_rebuild_and_preprocess(exported, parade_run):
    config = json.loads((exported / CONFIG_FILE).read_text())
    run_config = yaml.safe_load((parade_run / "config.yaml").read_text())
    model = load_hub_folder(exported)
    # timm's fields: the backbone as timm.create_model(architecture, num_classes=0, **model_args) builds it
    assert config["architecture"] == run_config["model"]["backbone"] == "test_resnet"
    assert config["num_classes"] == 0 and config["num_features"] == model.backbone.num_features
    data = timm.data.resolve_data_config(pretrained_cfg=config["pretrained_cfg"])  # what timm users call
    size = run_config["data"]["image_size"]
    assert tuple(data["input_size"]) == (3, size, size) and data["crop_pct"] == 1.0
    assert list(data["mean"]) == run_config["data"]["mean"] and list(data["std"]) == run_config["data"]["std"]
    # fairdml's own: the whole model, the source, the report that describes these weights, the version
    own = config["fairdml"]
    assert own["embedding_dim"] == run_config["model"]["embedding_dim"] == model.spec["embedding_dim"]
    assert own["backbone"] == "test_resnet" and own["backbone_kwargs"] == run_config["model"]["backbone_kwargs"]
    assert own["normalization"] == {"mean": run_config["data"]["mean"], "std": run_config["data"]["std"]}
    assert own["image_size"] == size and own["version"] == fairdml.__version__
    selection = json.loads((parade_run / "selection.json").read_text())
    assert own["source_file"] == selection["checkpoint"] and own["run"] == parade_run.name
    assert own["selected_by"] == {key: selection[key] for key in ("monitor", "mode", "score")}
    assert (exported / own["report"]).resolve() == (parade_run / "report.json").resolve()
    assert own["weights_sha256"] == hashlib.sha256((exported / WEIGHTS_FILE).read_bytes()).hexdigest()


def test_parade_heads_stay_out_of_the_safetensors(exported, parade_run):
    checkpoint = torch.load(parade_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(key.startswith("auxiliary.parade") for key in checkpoint["state_dict"])  # the run had them
    with safetensors.safe_open(exported / WEIGHTS_FILE, framework="pt") as weights:
        names = set(weights.keys())
    assert names == set(EmbeddingModel("test_resnet", 64).state_dict())
    assert all(name.startswith(("backbone.", "head.")) for name in names)
    dropped = json.loads((exported / CONFIG_FILE).read_text())["fairdml"]["dropped_heads"]
    assert dropped == ["parade_style_head", "parade_style_projection"]


def test_export_writes_its_three_files_together_and_replaces_none_unasked(parade_run, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / CONFIG_FILE).write_text('{"mine": true}')
    with pytest.raises(FileExistsError, match=r"config\.json exists.*--overwrite"):
        export_run(str(parade_run), str(folder))
    assert {p.name for p in folder.iterdir()} == {CONFIG_FILE}  # no model.pt beside a stranger's config
    written = export_run(str(parade_run), str(folder / "m.pt"), overwrite=True)
    assert written == folder / "m.pt" and load_hub_folder(folder).spec == load_embedding_model(written).spec
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary file left


# -- the loader refuses a damaged folder, naming the file -----------------------------------------------------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _without_checksum(folder: Path) -> None:
    config = json.loads((folder / CONFIG_FILE).read_text())
    del config["fairdml"]["weights_sha256"]
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def _other_embedding_dim(folder: Path) -> None:
    _without_checksum(folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["fairdml"]["embedding_dim"] = 32
    (folder / CONFIG_FILE).write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda f: (f / WEIGHTS_FILE).unlink(), FileNotFoundError, r"model\.safetensors is missing"),
        (lambda f: (f / CONFIG_FILE).unlink(), FileNotFoundError, r"config\.json is missing"),
        (lambda f: _truncate(f / CONFIG_FILE), ValueError, r"config\.json:\d+: not readable"),
        (lambda f: (f / CONFIG_FILE).write_text("{}"), ValueError, r"config\.json has no fairdml section"),
        (lambda f: _truncate(f / WEIGHTS_FILE), ValueError, r"model\.safetensors does not match the SHA-256"),
        (lambda f: _flip_last_byte(f / WEIGHTS_FILE), ValueError, r"model\.safetensors does not match the SHA-256"),
        (lambda f: (_without_checksum(f), _truncate(f / WEIGHTS_FILE)), ValueError,
         r"model\.safetensors is not a readable safetensors file"),
        (_other_embedding_dim, ValueError, r"model\.safetensors does not fit the model config\.json describes"),
    ],
    ids=["no-weights", "no-config", "cut-config", "foreign-config", "cut-weights", "flipped-byte",
         "cut-weights-unchecked", "other-shape"],
)  # fmt: skip
def test_loader_names_the_missing_or_damaged_file(exported, damage, error, message):
    damage(exported)
    with pytest.raises(error, match=message):
        load_hub_folder(exported)


def test_loader_of_a_folder_that_is_not_there(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no exported model folder at .*nowhere"):
        load_hub_folder(tmp_path / "nowhere")


# -- push: the client's boundary is a fake --------------------------------------------------------------------
@pytest.fixture
def hub(monkeypatch, tmp_path) -> SimpleNamespace:
    """A fake Hub client (what a push would send is recorded), a token, and a private temp dir to find leftovers."""
    record = SimpleNamespace(client=None, created=None, upload=None, files={}, fail=None)

    class FakeHfApi:
        def __init__(self, **kwargs):
            record.client = kwargs

        def create_repo(self, repo_id, **kwargs):
            if record.fail is not None:
                raise record.fail
            record.created = {"repo_id": repo_id, **kwargs}
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            record.upload = {"repo_id": repo_id, **kwargs}
            record.files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
            url = f"https://huggingface.co/{repo_id}/commit/0123abc"
            return CommitInfo(commit_url=url, commit_message="", commit_description="", oid="0123abc")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_not_a_real_token")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return record


@pytest.fixture
def run_copy(parade_run, tmp_path) -> Path:
    return Path(shutil.copytree(parade_run, tmp_path / "run"))


def test_push_uploads_the_card_and_the_weights_in_one_commit(hub, run_copy, tmp_path, capsys):
    main(["card", str(run_copy), "--push", REPO_ID])
    printed = capsys.readouterr().out
    assert hub.created["repo_id"] == REPO_ID and hub.created["exist_ok"] is True
    assert hub.upload["repo_id"] == REPO_ID and hub.client["library_name"] == "fairdml"
    assert sorted(hub.files) == sorted(UPLOADED) == ["README.md", "config.json", "model.safetensors", "report.json"]
    # README.md is the run's model card, with the metadata block the Hub reads, and says how to load the model
    readme = hub.files["README.md"].decode()
    card = ModelCard(readme)
    assert card.data.library_name == "fairdml" and card.data.pipeline_tag == "image-feature-extraction"
    assert card.data.eval_results and "# Model card:" in card.text
    assert f'load_hub_folder(snapshot_download("{REPO_ID}"))' in readme
    local_card = (run_copy / "MODEL_CARD.md").read_text()
    assert readme.startswith(local_card.rstrip("\n"))  # the same card, written locally once pushed
    assert hub.files["report.json"] == (run_copy / "report.json").read_bytes()
    # the uploaded weights are the run's tested model
    (tmp_path / "downloaded").mkdir()
    for name, data in hub.files.items():
        (tmp_path / "downloaded" / name).write_bytes(data)
    pushed, tested = load_hub_folder(tmp_path / "downloaded"), load_embedding_model(run_copy / "model.pt")
    with torch.no_grad():
        torch.testing.assert_close(pushed(_images()), tested(_images()), rtol=0, atol=0)
    assert json.loads(hub.files["config.json"])["fairdml"]["report"] == "report.json"
    pushed_line = f"pushed README.md, model.safetensors, config.json, report.json to https://huggingface.co/{REPO_ID}/"
    assert pushed_line in printed
    assert not list((tmp_path / "tmp").iterdir())  # the staging folder is gone


def _connection_error() -> Exception:
    """What the installed huggingface_hub's HTTP client raises when the Hub cannot be reached."""
    client = importlib.import_module(ClientHTTPError.__module__.split(".")[0])
    error_type = getattr(client, "ConnectError", None) or client.ConnectionError
    return error_type("[Errno -3] Temporary failure in name resolution")


def _refused(status: int) -> Exception:
    client = importlib.import_module(ClientHTTPError.__module__.split(".")[0])
    response = client.Response(status, request=client.Request("POST", "https://huggingface.co/api/repos/create"))
    return HfHubHTTPError(f"{status} Client Error", response=response)


@pytest.mark.parametrize(
    ("fail", "message"),
    [
        (_connection_error, "could not reach the Hugging Face Hub at https://huggingface.co (ConnectError"),
        (lambda: ConnectionError("Connection refused"), "could not reach the Hugging Face Hub"),
        (lambda: _refused(401), "refused the token (401): run `hf auth login` again or set HF_TOKEN"),
        (lambda: _refused(403), f"may not write to {REPO_ID} (403)"),
    ],
    ids=["client-connect-error", "connection-error", "401", "403"],
)
def test_a_failed_push_is_one_line_and_leaves_nothing(hub, run_copy, tmp_path, capsys, fail, message):
    hub.fail = fail()
    before = _snapshot(run_copy)
    err = cli_error(capsys, ["card", str(run_copy), "--push", REPO_ID])
    assert message in err and "no commit was made and nothing was written locally" in err
    assert _snapshot(run_copy) == before and not list((tmp_path / "tmp").iterdir())


def test_push_without_a_token_names_how_to_log_in(hub, run_copy, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda **kwargs: pytest.fail("a client without a token"))
    before = _snapshot(run_copy)
    err = cli_error(capsys, ["card", str(run_copy), "--push", REPO_ID])
    assert "no Hugging Face token: run `hf auth login` or set HF_TOKEN" in err
    assert _snapshot(run_copy) == before and not list((tmp_path / "tmp").iterdir())


@pytest.mark.parametrize(
    ("setting", "repo_id", "message"),
    [("offline", REPO_ID, "HF_HUB_OFFLINE is set"), ("online", "not a/repo id", "Repo id")],
)
def test_push_refused_before_any_work(hub, run_copy, capsys, monkeypatch, setting, repo_id, message):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", setting == "offline")
    before = _snapshot(run_copy)
    assert message in cli_error(capsys, ["card", str(run_copy), "--push", repo_id])
    assert _snapshot(run_copy) == before and hub.client is None


def test_push_of_a_folder_without_model_names_the_file(hub, run_copy, capsys):
    (run_copy / "model.pt").unlink()
    err = cli_error(capsys, ["card", str(run_copy), "--push", REPO_ID])
    assert "--push needs a trained run folder" in err and "model.pt is missing" in err and hub.client is None
