"""Where the YAML configs live, and `fairdml init-config`'s copy of them for a user to edit.

The defaults ship inside the package as `fairdml.configs`: pyproject.toml maps that package to the
repository's `configs/` folder, so a wheel, an editable install and a checkout all read the same files.
A user's folder (`--config-dir` / `$FAIRDML_CONFIG_DIR`) replaces them whole. No Hydra or torch here:
`fairdml init-config` stays instant.
"""

from __future__ import annotations

import atexit
import functools
import importlib.resources
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

ENV_VAR = "FAIRDML_CONFIG_DIR"
PACKAGE = "fairdml.configs"
ENTRY = "train.yaml"  # the config `fairdml train` composes; a folder without it is not a config folder
SOURCE_TREE = Path(__file__).resolve().parents[2] / "configs"  # a checkout run without (re)installing


def packaged_configs() -> Traversable | Path:
    """The default configs: the checkout's own `configs/` when this code runs from a checkout, else the
    `fairdml.configs` package (a wheel, a zip).

    The checkout comes first: with an editable install of one checkout, a second one (a worktree, a review
    copy) on `sys.path` imports its own code, but `fairdml.configs`, which it lacks as a folder, resolves
    through the install's finder to the first checkout's configs: code and configs from two trees."""
    if (SOURCE_TREE / ENTRY).is_file() and (SOURCE_TREE.parent / "pyproject.toml").is_file():
        return SOURCE_TREE
    try:
        return importlib.resources.files(PACKAGE)
    except ModuleNotFoundError:
        return SOURCE_TREE


def default_config_dir() -> Path:
    """The default configs as a folder Hydra can read: in place when installed as files, else (a zip
    import) extracted once per process to a temporary folder."""
    configs = packaged_configs()
    return configs if isinstance(configs, Path) else _extracted_configs()


@functools.cache
def _extracted_configs() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fairdml-configs-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    copy_configs(packaged_configs(), folder)
    return folder


def config_dir() -> Path:
    """The folder `fairdml train` composes from: `$FAIRDML_CONFIG_DIR` (what `--config-dir` sets), else
    the packaged defaults. Absolute, because Hydra's `initialize_config_dir` accepts nothing else."""
    chosen = os.environ.get(ENV_VAR)
    path = Path(chosen).expanduser().resolve() if chosen else default_config_dir()
    if not (path / ENTRY).is_file():
        if chosen:
            hint = f"from --config-dir / ${ENV_VAR}; `fairdml init-config DIR` writes a full set to edit"
        else:
            hint = "the packaged defaults: reinstall fairdml"
        raise FileNotFoundError(f"no {ENTRY} in config folder {path} ({hint})")
    return path


def copy_configs(source: Traversable | Path, target: Path) -> list[Path]:
    """Copy every `*.yaml` under `source` to the same place under `target`; the files written."""
    written = []
    for entry in source.iterdir():
        if entry.is_dir() and entry.name != "__pycache__":
            written += copy_configs(entry, target / entry.name)
        elif entry.is_file() and entry.name.endswith(".yaml"):
            (target / entry.name).parent.mkdir(parents=True, exist_ok=True)
            (target / entry.name).write_bytes(entry.read_bytes())
            written.append(target / entry.name)
    return written


def init_config(target: str | Path, overwrite: bool = False) -> list[Path]:
    """Write the default configs into `target` to edit; a non-empty folder only with `overwrite` (files of
    the same name are replaced, others kept)."""
    target = Path(target).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} is a file; init-config needs a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{target} is not empty; choose a new folder, or pass --overwrite to replace the default files in it"
        )
    target.mkdir(parents=True, exist_ok=True)
    return copy_configs(packaged_configs(), target)


def yaml_error_line(error: Exception, path: str | os.PathLike | None = None) -> str:
    """A PyYAML error as one line, `file:line:column: problem` (its own message spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    where = str(path or (mark.name if mark is not None else "YAML"))
    if mark is not None:
        where += f":{mark.line + 1}:{mark.column + 1}"
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")
