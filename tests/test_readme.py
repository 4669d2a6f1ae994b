"""The README's "Python API" blocks run, in order, as a reader would paste them (in a temporary folder)."""

from __future__ import annotations

from helpers.doc_blocks import run_blocks


def test_readme_python_api_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = run_blocks("README.md", "Python API")
    printed = capsys.readouterr().out
    assert "max_minus_min" in printed and "'minority'" in printed
    assert namespace["run"].report["n"] > 0
    measured = namespace["module"].reports["test"]["mitigations"]["parade"]["measured"]["style"]
    assert measured["n"] == len(namespace["datamodule"].views["test"])
