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
