"""`fairdml card RUN --push REPO_ID`: a run's model card and weights as one commit to a Hugging Face Hub repo.

What goes up: README.md (the model card with the YAML front matter the Hub reads, plus how to load the model),
model.safetensors + config.json (`fairdml.models.hub_folder`, from the run's model.pt: the model report.json
describes) and report.json. Everything is staged in a temporary folder and the local card is written only once
the commit exists, so a missing token or an unreachable Hub leaves the run folder as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.errors import HTTPError as ClientHTTPError  # the HTTP client's base: its transport errors
from huggingface_hub.utils import validate_repo_id

from fairdml import __version__
from fairdml.models.embedding import load_embedding_model
from fairdml.models.hub_folder import CONFIG_FILE, WEIGHTS_FILE, write_model_files
from fairdml.reports.card.write import CARD_FILES, write_model_card
from fairdml.reports.runs import load_run
from fairdml.utils.atomic import atomic_path, read_json
from fairdml.utils.run_folder import selected_by
from fairdml.utils.run_layout import MODEL_FILE, REPORT_FILE, RunPaths

README_FILE = "README.md"  # the name under which the Hub shows a repo's card
UPLOADED = (README_FILE, WEIGHTS_FILE, CONFIG_FILE, REPORT_FILE)
NOTHING_DONE = "no commit was made and nothing was written locally"


class HubPushError(OSError):
    """The push could not happen (no token, offline, refused, unreachable). An OSError, so the CLI shows one
    line and exits with code 2."""


def push_run(
    run_dir: str | os.PathLike,
    repo_id: str,
    card_inputs: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    embeddings: str | os.PathLike | None = None,
    private: bool = False,
) -> dict[str, Path]:
    """Write the run's card, upload it with the weights to `repo_id` (created if new), then write the card locally.

    Returns the local card's paths ({"markdown", "html", "data"}, in `out_dir`, default the run folder).

    Raises:
        HubPushError: no token, HF_HUB_OFFLINE, or the Hub refused or could not be reached (nothing written).
        FileNotFoundError: the run lacks report.json, config.yaml or model.pt (checked before any work).
    """
    validate_repo_id(repo_id)  # a ValueError naming what is wrong with the id ("user/name" expected)
    run = load_run(run_dir)
    for path in (RunPaths(run.path).model, RunPaths(run.path).config):
        if not path.is_file():
            raise FileNotFoundError(f"--push needs a trained run folder: {path} is missing (`fairdml train` writes it)")
    token = _hub_token()
    with tempfile.TemporaryDirectory(prefix="fairdml-push-") as staging:
        card = write_model_card(run.path, card_inputs, out_dir=Path(staging) / "card", embeddings=embeddings)
        upload = Path(staging) / "upload"
        _stage_upload(run.path, run.config or {}, card["markdown"], upload, repo_id)
        commit_url = _upload(upload, repo_id, token, private, run.path.name)
        written = _copy_card(card, Path(out_dir) if out_dir is not None else run.path)
    print(f"fairdml card: pushed {', '.join(UPLOADED)} to {commit_url}")
    return written


def _hub_token() -> str:
    """The token, or one line saying why there can be no push; nothing is written before this."""
    if hub_constants.HF_HUB_OFFLINE:
        raise HubPushError(f"HF_HUB_OFFLINE is set: unset it to push to the Hugging Face Hub; {NOTHING_DONE}")
    token = huggingface_hub.get_token()
    if not token:
        raise HubPushError(f"no Hugging Face token: run `hf auth login` or set HF_TOKEN; {NOTHING_DONE}")
    return token


def _stage_upload(run_dir: Path, run_config: dict, card: Path, folder: Path, repo_id: str) -> None:
    """README.md (the card + how to load), the model as model.safetensors + config.json, and report.json."""
    folder.mkdir()
    model = load_embedding_model(RunPaths(run_dir).model)
    selection = RunPaths(run_dir).selection
    source = {
        "run": run_dir.name,
        "source_file": MODEL_FILE,
        "selected_by": selected_by(read_json(selection, "selection")) if selection.is_file() else None,
        "report": REPORT_FILE,
    }
    targets = {"weights": folder / WEIGHTS_FILE, "config": folder / CONFIG_FILE}
    write_model_files(model, targets, run_config, source)
    shutil.copyfile(RunPaths(run_dir).report, folder / REPORT_FILE)
    usage = _how_to_load(repo_id, model.spec["embedding_dim"], run_config["data"])
    (folder / README_FILE).write_text(card.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + usage, "utf-8")


def _how_to_load(repo_id: str, embedding_dim: int, data: dict) -> str:
    size = data["image_size"]
    return (
        "## How to load this model\n\n"
        "```python\n"
        "from huggingface_hub import snapshot_download\n"
        "from fairdml.models.hub_folder import load_hub_folder\n\n"
        f'model = load_hub_folder(snapshot_download("{repo_id}"))  # safetensors + config.json, nothing unpickled\n'
        "```\n\n"
        f"Input: RGB images resized to {size} px (short side), centre-cropped to {size}×{size}, scaled to [0, 1] "
        f"and normalised with mean {list(data['mean'])} and std {list(data['std'])} (config.json, "
        f"`pretrained_cfg`). Output: a unit-norm {embedding_dim}-d embedding per image.\n"
    )


def _upload(folder: Path, repo_id: str, token: str, private: bool, run_name: str) -> str:
    """One commit with every file of `folder`; the commit's URL. A failure is one HubPushError line."""
    api = huggingface_hub.HfApi(token=token, library_name="fairdml", library_version=__version__)
    try:
        repo = api.create_repo(repo_id, private=True if private else None, exist_ok=True)  # private: new repos only
        commit = api.upload_folder(
            repo_id=repo.repo_id, folder_path=folder, commit_message=f"fairdml: model card and weights of {run_name}"
        )
    except (ClientHTTPError, OSError) as error:
        raise _failure(error, repo_id) from error
    return commit.commit_url


def _failure(error: Exception, repo_id: str) -> HubPushError:
    status = getattr(getattr(error, "response", None), "status_code", None)
    detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if status == 401:
        reason = "the Hugging Face Hub refused the token (401): run `hf auth login` again or set HF_TOKEN"
    elif status == 403:
        reason = f"the token may not write to {repo_id} (403): use a write token of that user or organisation"
    elif isinstance(error, HfHubHTTPError):
        reason = f"the Hugging Face Hub answered {status} for {repo_id} ({detail})"
    else:
        reason = f"could not reach the Hugging Face Hub at {hub_constants.ENDPOINT} ({type(error).__name__}: {detail})"
    return HubPushError(f"{reason}; {NOTHING_DONE}")


def _copy_card(card: dict[str, Path], out: Path) -> dict[str, Path]:
    """The staged card's files into `out`, all or none (each under a temporary name until all are copied)."""
    targets = {key: out / CARD_FILES[key] for key in card}
    with contextlib.ExitStack() as stack:
        for key, target in targets.items():
            shutil.copyfile(card[key], stack.enter_context(atomic_path(target, suffix=target.suffix)))
    return targets
