"""fairdml as a library: the wheel and the sdist carry the configs, a wheel trains outside the repository, and
`fairdml init-config` gives a user a copy that `--config-dir` / `$FAIRDML_CONFIG_DIR` then reads.

The builds run on a copy of the repository (so no build/ or egg-info is left in the working tree, and a stale
build/ cannot leak old files into the wheel), with the venv's setuptools (`--no-build-isolation`: offline).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from fairdml.cli import main
from fairdml.config import compose_config
from fairdml.utils.config_files import ENV_VAR, default_config_dir, init_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
CARD_ASSETS = ["card.css", "card.js", "card_template.html"]
# A fresh process with the one-epoch tiny run of the library's README (tests/helpers/tiny.py, as a command).
TRAIN_ONE_EPOCH = [
    "train", "model=tiny", "trainer.max_epochs=1", "data.options.num_classes=30", "data.options.samples_per_class=12",
    "data.batch_size=32", "logger=csv", "evaluation.leakage=false", "trainer.enable_progress_bar=false",
]  # fmt: skip


def default_config_files() -> set[str]:
    """The repository's configs, as paths relative to configs/ (train.yaml, data/digits.yaml, ...)."""
    return {path.relative_to(CONFIGS).as_posix() for path in CONFIGS.rglob("*.yaml")}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without a config folder choice, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key != ENV_VAR}
    return {**env, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", **extra}


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(command, cwd=cwd, env=env or clean_env(), capture_output=True, text=True)
    assert out.returncode == 0, f"{command} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


# ---- fast: where the configs are found, init-config, --config-dir ----


def test_every_package_folder_is_listed_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "fairdml").rglob("__init__.py")}
    assert set(listed) == found | {"fairdml.configs"}, "pyproject.toml [tool.setuptools] packages: add the new one"


def test_defaults_are_the_repository_configs(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_config_dir().resolve() == CONFIGS.resolve()
    assert {"train.yaml", "model/tiny.yaml", "callbacks/parade.yaml", "card/card_inputs.yaml"} <= default_config_files()


def test_init_config_copies_every_default(tmp_path):
    written = init_config(tmp_path / "mine")
    assert {path.relative_to(tmp_path / "mine").as_posix() for path in written} == default_config_files()
    for name in default_config_files():
        assert (tmp_path / "mine" / name).read_bytes() == (CONFIGS / name).read_bytes(), name
    assert not (tmp_path / "mine" / "__init__.py").exists()  # only the YAML a user edits


def test_init_config_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        init_config(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]  # nothing written
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tiny.yaml").write_text("edited: true\n")
    init_config(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # a user's other files stay
    assert (tmp_path / "model" / "tiny.yaml").read_bytes() == (CONFIGS / "model" / "tiny.yaml").read_bytes()


def test_init_config_command_says_how_to_use_it_without_importing_torch(tmp_path):
    code = "import sys; from fairdml.cli import main; main(sys.argv[1:]); print('torch' in sys.modules)"
    out = run([sys.executable, "-c", code, "init-config", "mine"], cwd=tmp_path)
    lines = out.stdout.splitlines()
    assert lines[-1] == "False"
    assert f"FAIRDML_CONFIG_DIR={tmp_path / 'mine'} fairdml train" in out.stdout
    assert f"fairdml train --config-dir {tmp_path / 'mine'}" in out.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "fairdml", "init-config", "mine"], cwd=tmp_path, env=clean_env(),
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode == 2 and "not empty" in refused.stderr and len(refused.stderr.splitlines()) == 1


def _edited_copy(folder: Path) -> Path:
    """A user's copy whose default embedding size differs from the packaged one (64 -> 48)."""
    init_config(folder)
    tiny = folder / "model" / "tiny.yaml"
    assert yaml.safe_load(tiny.read_text())["embedding_dim"] == 64
    tiny.write_text(tiny.read_text().replace("embedding_dim: 64", "embedding_dim: 48"))
    return folder


def test_env_var_composes_from_the_copy(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(_edited_copy(tmp_path / "mine")))
    assert compose_config([]).model.embedding_dim == 48
    monkeypatch.delenv(ENV_VAR)
    assert compose_config([]).model.embedding_dim == 64


def test_train_with_config_dir_uses_the_copy(tiny_overrides, tmp_path, monkeypatch):
    # `--config-dir` sets the variable in this process: setenv first records its state, so the undo removes it
    monkeypatch.setenv(ENV_VAR, "set by --config-dir below")
    monkeypatch.delenv(ENV_VAR)
    copy = _edited_copy(tmp_path / "mine")
    main(["train", "--config-dir", str(copy), *tiny_overrides, f"run_dir={tmp_path / 'run'}"])
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["embedding_dim"] == 48
    assert json.loads((tmp_path / "run" / "report.json").read_text())["n"] > 0


def test_a_folder_without_train_yaml_is_a_one_line_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "fairdml", "train", "--config-dir", str(tmp_path)], cwd=tmp_path, env=clean_env(),
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert f"no train.yaml in config folder {tmp_path}" in out.stderr and "init-config" in out.stderr


def test_a_second_checkout_composes_its_own_configs(tmp_path):
    """With fairdml installed editable from one checkout, a second checkout (a worktree, a review copy) run from
    its own folder imports its own code; it must compose its own configs too, not the installed checkout's."""
    second = tmp_path / "review"
    shutil.copytree(REPO / "fairdml", second / "fairdml", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CONFIGS, second / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", second / "pyproject.toml")
    tiny = second / "configs" / "model" / "tiny.yaml"
    tiny.write_text(tiny.read_text().replace("embedding_dim: 64", "embedding_dim: 48"))
    code = (
        "import fairdml, fairdml.utils.config_files as files; from fairdml.config import compose_config; "
        "print(fairdml.__file__); print(files.config_dir()); print(compose_config([]).model.embedding_dim)"
    )
    module, folder, dim = run([sys.executable, "-c", code], second, clean_env(PYTHONPATH=str(second))).stdout.split()
    assert Path(module) == second / "fairdml" / "__init__.py"
    assert Path(folder) == second / "configs" and dim == "48"


def test_configs_imported_from_a_zip_are_extracted(tmp_path):
    archive = tmp_path / "fairdml.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for module in (REPO / "fairdml").rglob("*.py"):
            zipped.write(module, module.relative_to(REPO).as_posix())
        for path in CONFIGS.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, f"fairdml/configs/{path.relative_to(CONFIGS).as_posix()}")
    code = (
        "import fairdml.utils.config_files as files; folder = files.config_dir(); print(files.__file__); "
        "print(folder); "
        "print(*sorted(path.relative_to(folder).as_posix() for path in folder.rglob('*.yaml')))"
    )
    out = run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(PYTHONPATH=str(archive)))
    module, folder, names = out.stdout.splitlines()
    assert module.startswith(str(archive)) and not folder.startswith(str(archive))
    assert set(names.split()) == default_config_files()
    assert not Path(folder).exists()  # the extracted copy is removed when the process ends


# ---- slow: build the wheel and the sdist from a copy of the repository ----


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory) -> Path:
    """The repository without its environments and artifacts, plus planted outputs that must stay out."""
    tree = tmp_path_factory.mktemp("source") / "fairdml"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "outputs", "wandb", "lightning_logs", "__pycache__",
        ".pytest_cache", ".ruff_cache",
    )  # fmt: skip
    shutil.copytree(REPO, tree, ignore=ignore)
    for planted in ("outputs/default/run/report.json", ".venv/pyvenv.cfg", "wandb/run/files.txt"):
        (tree / planted).parent.mkdir(parents=True, exist_ok=True)
        (tree / planted).write_text("{}")
    return tree


def build_wheel(source: Path, out: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)], source)
    (wheel,) = out.glob("fairdml-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(source_tree, tmp_path_factory) -> Path:
    return build_wheel(source_tree, tmp_path_factory.mktemp("wheel"))


def assert_holds_the_package(names: set[str]) -> None:
    """A wheel's file list has every config, every module and the card's assets."""
    assert {f"fairdml/configs/{name}" for name in default_config_files()} <= names
    groups = {path.name for path in CONFIGS.iterdir() if path.is_dir() and path.name != "__pycache__"}
    packaged = [name.split("/")[2:] for name in names if name.startswith("fairdml/configs/")]
    assert groups == {parts[0] for parts in packaged if len(parts) == 2}
    modules = {path.relative_to(REPO).as_posix() for path in (REPO / "fairdml").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert {f"fairdml/reports/card/assets/{name}" for name in CARD_ASSETS} <= names


@pytest.mark.slow
def test_wheel_holds_configs_and_card_assets(wheel):
    with zipfile.ZipFile(wheel) as zipped:
        names = set(zipped.namelist())
    assert_holds_the_package(names)
    assert "fairdml/configs/train.yaml" in names
    assert not any(name.startswith(("outputs/", "tests/", ".venv/", "configs/")) for name in names)


@pytest.mark.slow
def test_wheel_trains_outside_the_repository(wheel, tmp_path):
    target, workdir = tmp_path / "site", tmp_path / "work"
    workdir.mkdir()
    run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], workdir)
    env = clean_env(PYTHONPATH=str(target))
    code = "import fairdml, fairdml.utils.config_files as files; print(fairdml.__file__); print(files.config_dir())"
    module, folder = run([sys.executable, "-c", code], workdir, env).stdout.splitlines()
    assert Path(module) == target / "fairdml" / "__init__.py"
    assert Path(folder) == target / "fairdml" / "configs"
    run([sys.executable, "-m", "fairdml", *TRAIN_ONE_EPOCH], workdir, env)
    (report,) = (workdir / "outputs").glob("default/*/report.json")
    assert json.loads(report.read_text())["n"] > 0


@pytest.mark.slow
def test_sdist_holds_configs_and_builds_the_same_wheel(source_tree, tmp_path):
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    name = run([sys.executable, "-c", code], source_tree).stdout.splitlines()[-1]
    with tarfile.open(tmp_path / name) as sdist:
        members = {member.split("/", 1)[1] for member in sdist.getnames() if "/" in member}
        sdist.extractall(tmp_path / "unpacked", filter="data")
    assert {f"configs/{name}" for name in default_config_files()} | {"README.md", "pyproject.toml"} <= members
    assert {"configs/__init__.py", "tests/test_packaging.py", "docs/architecture.md"} <= members
    licenses = {path.name for path in REPO.glob("LICEN[CS]E*")}
    assert licenses <= members
    assert not any(member.startswith(("outputs/", ".venv/", "wandb/", ".git/")) for member in members)
    assert not any("__pycache__" in member or member.endswith(".pyc") for member in members)
    rebuilt = build_wheel(tmp_path / "unpacked" / name.removesuffix(".tar.gz"), tmp_path / "wheel")
    with zipfile.ZipFile(rebuilt) as zipped:
        assert_holds_the_package(set(zipped.namelist()))
