"""The one-line error a `fairdml ...` command gives for bad input, read as a test expects it."""

from __future__ import annotations

import pytest

from fairdml.cli import main


def cli_error(capsys, argv: list[str]) -> str:
    """The one line `fairdml ...` prints for a bad input (exit code 2, no traceback)."""
    capsys.readouterr()  # what earlier steps of the test printed
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "\n" not in err, err
    return err
