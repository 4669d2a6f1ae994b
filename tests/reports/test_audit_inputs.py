"""`fairdml audit` on bad inputs: one error line naming the file and the actual cause, no traceback, and
report.json / the card written atomically."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from fairdml.cli import main
from fairdml.reports.report import load_report, save_report

pytestmark = pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")


def arrays(n: int = 60) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, n)
    embeddings = (rng.normal(size=(6, 5))[labels] + 0.3 * rng.normal(size=(n, 5))).astype(np.float32)
    return {"embeddings": embeddings, "labels": labels, "groups": np.array(["a", "b"])[np.arange(n) % 2]}


def audit_error(capsys, *argv: str) -> str:
    """Run `fairdml audit ...`, expect exit code 2 and exactly one line on stderr; return that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", *argv, "--no-card"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fairdml audit: error: ")
    return lines[0]


def test_truncated_npz(tmp_path, capsys):
    path = tmp_path / "emb.npz"
    np.savez(path, **arrays())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    line = audit_error(capsys, str(path), "--out", str(tmp_path / "out"))
    assert str(path) in line and "truncated or corrupt zip" in line and "pickle" not in line


def test_corrupt_member_of_a_zip(tmp_path, capsys):
    path = tmp_path / "emb.npz"
    np.savez(path, **arrays())  # stored, not compressed: flipping bytes breaks the CRC, not the structure
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("embeddings.npy")
    middle = info.header_offset + 30 + len(info.filename) + 200
    data[middle : middle + 8] = bytes(8)
    path.write_bytes(bytes(data))
    line = audit_error(capsys, str(path), "--out", str(tmp_path / "out"))
    assert str(path) in line and "truncated or corrupt zip" in line


@pytest.mark.parametrize("name", ["emb.npz", "emb.npy"])
def test_npy_array_under_either_name(tmp_path, capsys, name):
    path = tmp_path / name
    with open(path, "wb") as handle:  # np.save would append .npy to the .npz name
        np.save(handle, arrays()["embeddings"])
    line = audit_error(capsys, str(path), "--out", str(tmp_path / "out"))
    assert str(path) in line and "not an .npz archive" in line
    assert "it is a .npy array, a single one of shape (60, 5)" in line and "np.savez" in line
    assert "pickle" not in line


def test_text_file(tmp_path, capsys):
    path = tmp_path / "emb.npz"
    path.write_text("embedding,label,group\n0.1,3,a\n", encoding="utf-8")
    line = audit_error(capsys, str(path), "--out", str(tmp_path / "out"))
    assert str(path) in line and "not an .npz archive (it is a text file starting 'embedding,label,group')" in line
    assert "pickle" not in line


def test_empty_file_and_folder(tmp_path, capsys):
    (tmp_path / "empty.npz").write_bytes(b"")
    assert "it is an empty file" in audit_error(capsys, str(tmp_path / "empty.npz"), "--out", str(tmp_path / "o"))
    (tmp_path / "dir.npz").mkdir()
    assert "is a folder" in audit_error(capsys, str(tmp_path / "dir.npz"), "--out", str(tmp_path / "o"))


def test_object_array_keeps_the_pickle_message(tmp_path, capsys):
    path = tmp_path / "emb.npz"
    data = arrays()
    data["groups"] = data["groups"].astype(object)
    np.savez(path, **data)
    line = audit_error(capsys, str(path), "--out", str(tmp_path / "out"))
    assert str(path) in line and "'groups' is an object array" in line and "pickle" in line
    assert "dtype=str" in line


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "report.txt"
    out.write_text("not a folder")
    # the embeddings do not exist: the --out error comes first, so nothing was read or computed
    line = audit_error(capsys, str(tmp_path / "missing.npz"), "--out", str(out))
    assert f"--out {out} is a file; give a folder" in line
    line = audit_error(capsys, str(tmp_path / "missing.npz"), "--out", str(out / "sub"))
    assert f"--out {out / 'sub'} is inside {out}, which is a file" in line
    assert out.read_text() == "not a folder"


def test_good_file_still_audits(tmp_path):
    path = tmp_path / "emb.npz"
    np.savez(path, **arrays(), group_attribute=np.array("style"))
    main(["audit", str(path), "--out", str(tmp_path / "out"), "--ks", "1", "--no-card"])
    assert load_report(tmp_path / "out" / "report.json")["meta"]["group_attribute"] == "style"


def _fail_replace(*_args, **_kwargs):
    raise OSError("disk full (simulated)")


def test_save_report_is_atomic(tmp_path, monkeypatch):
    path = save_report({"n": 1, "overall": {}, "groups": {}, "gaps": {}}, tmp_path / "report.json")
    before = path.read_text()
    monkeypatch.setattr("fairdml.utils.atomic.os.replace", _fail_replace)
    with pytest.raises(OSError, match="simulated"):
        save_report({"n": 2, "overall": {"nmi": float("nan")}, "groups": {}, "gaps": {}}, path)
    assert path.read_text() == before  # the old report, whole
    # no temporary left behind, and no report.csv of the old report beside a report.json the save did not replace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    monkeypatch.undo()
    save_report({"n": 2, "overall": {"nmi": float("nan")}, "groups": {}, "gaps": {}}, path)
    assert json.loads(path.read_text())["overall"]["nmi"] is None
    assert (tmp_path / "report.csv").read_text().splitlines()[1] == ",overall,nmi,,,,2,False"


def test_model_card_files_are_written_atomically(tmp_path, monkeypatch):
    from fairdml.reports.audit import run_audit
    from fairdml.reports.card import CARD_FILES, write_model_card

    path = tmp_path / "emb.npz"
    np.savez(path, **arrays())
    run_audit(str(path), str(tmp_path / "out"), ks=(1,))
    out = tmp_path / "out"
    before = {name: (out / name).read_bytes() for name in CARD_FILES.values()}
    names_before = sorted(p.name for p in out.iterdir())
    monkeypatch.setattr("fairdml.utils.atomic.os.replace", _fail_replace)
    with pytest.raises(OSError, match="simulated"):
        write_model_card(out, embeddings=path)
    assert {name: (out / name).read_bytes() for name in CARD_FILES.values()} == before
    assert sorted(p.name for p in out.iterdir()) == names_before
