"""Card inputs YAML: every number is range-checked at load, the error naming the key, the file and the value."""

from __future__ import annotations

import dataclasses

import pytest

from fairdml.reports.card.inputs import VERIFICATION_RANGES, VerificationSettings, load_card_inputs


def write(tmp_path, text: str):
    path = tmp_path / "card_inputs.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("target_fmr: 5", r"verification\.target_fmr must be a number in \(0, 1\).*got 5; a percentage\? write 0\.05"),
        ("target_fmr: 0", r"verification\.target_fmr must be a number in \(0, 1\).*got 0$"),
        ("target_fmr: 1.0", r"verification\.target_fmr must be a number in \(0, 1\).*got 1\.0"),
        ("target_fmr: -0.1", r"verification\.target_fmr .*got -0\.1"),
        ("target_fmr: .nan", r"verification\.target_fmr .*got nan"),
        ("target_fmr: '0.01'", r"verification\.target_fmr must be a number .*got '0\.01'"),
        ("operating_threshold: 1.5", r"verification\.operating_threshold must be a number in \[-1, 1\].*got 1\.5"),
        ("max_pairs_per_group: 0", r"verification\.max_pairs_per_group must be an integer >= 1.*got 0"),
        ("max_pairs_per_group: true", r"verification\.max_pairs_per_group must be an integer.*got True"),
        ("seed: -1", r"verification\.seed must be an integer >= 0.*got -1"),
        ("resolution: 2.5", r"verification\.resolution must be an integer in \[1, 100000\].*got 2\.5"),
        ("resolution: 1000000", r"verification\.resolution must be an integer in \[1, 100000\].*got 1000000"),
    ],
)
def test_out_of_range_numbers_name_key_file_and_value(tmp_path, line, expected):
    path = write(tmp_path, f"verification:\n  {line}\n")
    with pytest.raises(ValueError, match=expected) as error:
        load_card_inputs(path)
    assert str(error.value).startswith(f"{path}: ")


def test_valid_numbers_and_empty_ones_load(tmp_path):
    path = write(
        tmp_path,
        "verification:\n  target_fmr: 0.001\n  operating_threshold: -0.2\n  max_pairs_per_group: 10\n"
        "  seed: 3\n  resolution: 100000\n",
    )
    settings = load_card_inputs(path).verification
    assert (settings.target_fmr, settings.operating_threshold, settings.seed) == (0.001, -0.2, 3)
    empty = write(tmp_path, "verification:\n  target_fmr: null\n  operating_threshold: null\n")
    assert load_card_inputs(empty).verification == VerificationSettings()  # null = the default
    assert load_card_inputs("configs/card/card_inputs.yaml").verification == VerificationSettings()


def test_every_numeric_setting_has_a_range():
    numeric = {f.name for f in dataclasses.fields(VerificationSettings)}
    assert set(VERIFICATION_RANGES) == numeric


def test_settings_built_in_code_are_checked_too():
    with pytest.raises(ValueError, match=r"VerificationSettings: target_fmr must be a number in \(0, 1\)"):
        VerificationSettings(target_fmr=5)
    VerificationSettings(target_fmr=0.5, operating_threshold=1, resolution=10)


def test_cli_card_reports_a_bad_target_fmr_as_one_line(tmp_path, capsys):
    from fairdml.cli import main

    path = write(tmp_path, "verification:\n  target_fmr: 5\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text('{"n": 0, "overall": {}, "groups": {}, "gaps": {}}')
    with pytest.raises(SystemExit) as exit_info:
        main(["card", str(tmp_path / "run"), "--inputs", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "verification.target_fmr" in err[0] and str(path) in err[0] and "got 5" in err[0]


def test_cli_audit_checks_card_inputs_before_any_work(tmp_path, capsys):
    from fairdml.cli import main

    path = write(tmp_path, "verification:\n  target_fmr: 5\n")
    # the embeddings do not exist: the card inputs error comes first (the card itself would only warn)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "out"), "--card-inputs", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "verification.target_fmr" in err[0] and "got 5" in err[0]
    assert not (tmp_path / "out").exists()
