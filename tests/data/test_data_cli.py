"""`arsenale data …` through the real command line (CliRunner), text and --json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arsenale.cli.main import app
from tests.data.conftest import write_tree


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in ("FORCE_COLOR", "COLUMNS", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path  # ARSENALE_HOME is tmp_path/.arsenale (tests/conftest.py)


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["data", *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result.stdout if code == 0 else result.stderr


def test_add_status_diff_checkout_push_pull_gc(root: Path) -> None:
    write_tree(root / "data", {"a.csv": b"x,y\n1,2\n", "b.txt": b"b\n"})
    added = json.loads(run("add", "data", "--json"))
    assert added[0]["manifest"] == "data.ars" and added[0]["files"] == 2
    assert "up to date" in run("status")
    shutil.copy(root / "data.ars", root / "v1.ars")
    (root / "data" / "b.txt").unlink()
    write_tree(root / "data", {"a.csv": b"x,y\n1,2\n3,4\n", "c.txt": b"c\n"})
    out = run("status")
    assert "added:" in out and "c.txt" in out and "removed:" in out and "modified:" in out
    [report] = [r for r in json.loads(run("status", "data", "--json"))]
    assert (report["added"], report["removed"], report["modified"], report["clean"]) == (
        ["c.txt"], ["b.txt"], ["a.csv"], False)
    run("add", "data")
    diff = json.loads(run("diff", "v1.ars", "data.ars", "--json"))
    assert diff["tables"]["a.csv"]["rows"] == {"old": 1, "new": 2, "added": 1, "removed": 0}
    text = run("diff", "v1.ars", "data.ars")
    assert "a.csv" in text and "rows 1 → 2" in text
    (root / "v1.ars").unlink()
    pushed = json.loads(run("push", "--remote", str(root / "remote"), "--json"))
    assert pushed["transferred"] == 2
    shutil.rmtree(root / "data")
    shutil.rmtree(root / ".arsenale" / "cache")
    assert "pulled 2 blob(s)" in run("pull", "--remote", str(root / "remote"))
    assert sorted(p.name for p in (root / "data").iterdir()) == ["a.csv", "c.txt"]
    gc = json.loads(run("gc", "--dry-run", "--json"))
    assert gc["dry_run"] and gc["removed"] == 0
    assert "removed 0 blob(s)" in run("gc")


def test_errors_exit_with_their_codes(root: Path) -> None:
    assert "no such file" in run("add", "missing", code=3)
    assert "no remote" in run("push", code=2)
    (root / "bad.ars").write_text('{"arsenale_data": 1, "kind": "dir", "path": "..", "files": []}')
    assert "plain file or folder name" in run("checkout", "bad.ars", code=2)
    write_tree(root / "d", {"a": b"1"})
    run("add", "d")
    write_tree(root / "d", {"a": b"2"})
    assert "would lose changes" in run("checkout", "d.ars", code=4)
    assert "--link" in run("add", "d", "--link", "teleport", code=2)


def test_remote_from_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(root / "d", {"a": b"1"})
    run("add", "d")
    monkeypatch.setenv("ARSENALE_DATA_REMOTE", str(root / "r"))
    assert "pushed 1 object(s)" in run("push")


def test_data_status_imports_no_heavy_libraries(root: Path) -> None:
    write_tree(root / "d", {"a": b"1"})
    run("add", "d")
    code = ("import sys, runpy; sys.argv = ['arsenale', 'data', 'status', '--json']\n"
            "try:\n    runpy.run_module('arsenale.cli.main', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "heavy = [m for m in ('pandas', 'sklearn', 'sqlalchemy', 'fastapi', 'pyarrow', 'numpy') "
            "if m in sys.modules]\nprint(heavy, file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env,
                          timeout=60)
    assert json.loads(proc.stdout)[0]["clean"] is True
    assert proc.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(("preset", "numpy_first", "expected"),
                         [(None, False, "1"), ("4", False, "4"), (None, True, None)])
def test_data_commands_start_no_blas_threads(root: Path, preset: str | None, numpy_first: bool,
                                             expected: str | None) -> None:
    """A data command run from the shell asks OpenBLAS for no thread pool before numpy loads; a program that
    already loaded numpy, or a user who chose a number, keeps theirs."""
    code = ("import os, sys\n" + ("import numpy\n" if numpy_first else "")
            + "from arsenale.cli.datawork import workspace\nworkspace().close()\n"
            "print(os.environ.get('OPENBLAS_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env,
                          timeout=60, check=True)
    assert proc.stdout.strip() == str(expected)
