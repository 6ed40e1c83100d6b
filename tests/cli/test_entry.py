"""The console script's fast path for `arsenale data status` says exactly what the Typer command says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arsenale.cli import entry
from arsenale.cli.main import app


@pytest.fixture()
def tracked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    for i in range(5):
        (tmp_path / "d" / f"f{i}.txt").write_text(str(i))
    assert CliRunner().invoke(app, ["data", "add", "d"]).exit_code == 0
    (tmp_path / "d" / "f1.txt").write_text("changed")
    (tmp_path / "d" / "new.txt").write_text("new")
    (tmp_path / "d" / "f2.txt").unlink()
    return tmp_path


@pytest.mark.parametrize("extra", [[], ["--json"], ["d"]])
def test_fast_status_matches_the_typer_command(tracked: Path, capsys: pytest.CaptureFixture[str],
                                               extra: list[str]) -> None:
    CliRunner().invoke(app, ["data", "status", *extra])  # warm the stat cache: "hashed" counts must agree
    slow = CliRunner().invoke(app, ["data", "status", *extra])
    assert slow.exit_code == 0, slow.output
    assert entry._fast_status(extra) == 0
    fast = capsys.readouterr().out
    assert fast == slow.stdout
    if extra == ["--json"]:
        report = json.loads(fast)[0]
        assert report["modified"] == ["f1.txt"] and report["added"] == ["new.txt"]


def test_errors_and_other_flags(tracked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert entry._fast_status(["missing-path"]) != 0
    assert capsys.readouterr().err.startswith("error: ")
    out = subprocess.run([sys.executable, "-m", "arsenale.cli.entry", "data", "status", "--help"],
                         capture_output=True, text=True, cwd=tracked)
    assert out.returncode == 0 and "Usage" in out.stdout  # anything but the plain forms goes to Typer


def _clean_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import os

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for i in range(4):
        (tmp_path / "d" / "sub" / f"f{i}.txt").write_text(str(i))
    old = 1_000_000_000  # long before the stat cache's clock: never racily clean
    for f in (tmp_path / "d" / "sub").iterdir():
        os.utime(f, (old, old))
    assert CliRunner().invoke(app, ["data", "add", "d"]).exit_code == 0
    return tmp_path


def test_unchanged_tree_is_answered_from_its_stat_signature(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from arsenale.cli.datawork import quick_status, status_reports

    _clean_tree(tmp_path, monkeypatch)
    assert quick_status(None) is None  # nothing vouched for yet: the full status runs and records the signature
    full = status_reports(["d"])
    assert full[0]["clean"] and full[0]["hashed"] == 0
    assert quick_status(None) == quick_status(["d"]) == quick_status(["d.ars"]) == full
    # every kind of change sends status back to the full path, which reports it
    (tmp_path / "d" / "sub" / "f1.txt").write_text("x")  # same size, new mtime
    assert quick_status(None) is None
    assert status_reports(None)[0]["modified"] == ["sub/f1.txt"]
    (tmp_path / "d" / "sub" / "f1.txt").write_text("1")
    status_reports(None)
    (tmp_path / "d" / "new.txt").write_text("n")
    assert quick_status(None) is None and status_reports(None)[0]["added"] == ["new.txt"]
    (tmp_path / "d" / "new.txt").unlink()
    (tmp_path / "d" / "sub" / "f3.txt").unlink()
    assert quick_status(None) is None and status_reports(None)[0]["removed"] == ["sub/f3.txt"]


def test_a_changed_manifest_is_not_vouched_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arsenale.cli.datawork import quick_status, status_reports

    _clean_tree(tmp_path, monkeypatch)
    status_reports(None)
    assert quick_status(None) is not None
    manifest = tmp_path / "d.ars"
    st = manifest.stat()
    text = manifest.read_text()
    first = json.loads(text)["files"][0]["digest"]
    manifest.write_text(text.replace(first, "0" * 64, 1))  # same size: only its bytes say it changed
    import os

    os.utime(manifest, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert quick_status(None) is None
    assert entry._fast_status([]) != 0  # the full status reads it, finds the digest no longer matches


def test_quick_answers_are_the_full_status_dictionaries() -> None:
    from arsenale.cli.datawork import clean_report
    from arsenale.data.results import StatusReport

    assert clean_report("a.ars", "a") == StatusReport(manifest="a.ars", path="a").to_dict()


def test_targets_outside_the_workspace_go_to_the_full_status(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from arsenale.cli.datawork import quick_status, status_reports

    (tmp_path / "ws").mkdir()
    _clean_tree(tmp_path / "ws", monkeypatch)
    status_reports(None)
    assert quick_status(["../elsewhere"]) is None


def _fresh_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    for i in range(40):
        (tmp_path / "d" / f"f{i}.txt").write_text(str(i) * 10)


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_fast_add_says_what_the_typer_command_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    _fresh_tree(tmp_path, monkeypatch)
    assert entry._fast_add(["d"], None, bool(extra)) == 0
    fast = capsys.readouterr().out
    (tmp_path / "d" / "new.txt").write_text("new")
    slow = CliRunner().invoke(app, ["data", "add", "d", *extra])
    assert slow.exit_code == 0, slow.output
    assert entry._fast_add(["d"], None, bool(extra)) == 0  # unchanged since the Typer add
    again = capsys.readouterr().out
    assert again.replace("(unchanged)", "").split(":")[0] == slow.stdout.split(":")[0]
    if extra:
        assert json.loads(fast)[0]["files"] == 40 and json.loads(again)[0]["changed"] is False
        assert json.loads(slow.stdout)[0]["files"] == 41
    else:
        assert fast.startswith("d.ars: 40 file(s)") and again.rstrip().endswith("(unchanged)")


def test_plain_add_command_lines() -> None:
    assert entry._plain_add(["a", "b", "--json"]) == (["a", "b"], None, True)
    assert entry._plain_add(["a", "--link", "hardlink,copy"]) == (["a"], "hardlink,copy", False)
    assert entry._plain_add(["--link=copy", "a"]) == (["a"], "copy", False)
    for other in (["--help"], ["a", "--remote", "x"], [], ["a", "--link"]):
        assert entry._plain_add(other) is None  # Typer answers these (help, errors, other options)


def test_fast_add_errors_and_link_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _fresh_tree(tmp_path, monkeypatch)
    assert entry._fast_add(["missing"], None, False) == 3
    assert capsys.readouterr().err.startswith("error: ")
    assert entry._fast_add(["d"], "teleport", False) == 2  # unknown link mode: the Typer command's error
    assert not (tmp_path / "d.ars").exists()
    out = subprocess.run([sys.executable, "-m", "arsenale.cli.entry", "data", "add", "d", "--link", "copy"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("d.ars: 40 file(s)"), out.stderr
