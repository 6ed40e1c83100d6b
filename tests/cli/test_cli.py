"""The `arsenale` command line against a temporary SQLite store, seeded through `arsenale.Client`."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import sys
import threading
import types
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arsenale import Client, __version__
from arsenale.cli import server as server_cli
from arsenale.cli.main import app, main
from arsenale.store.db import dispose_all
from arsenale.store.migrate import head_revision

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
UNKNOWN_RUN = "0" * 32


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in [k for k in os.environ if k.startswith("ARSENALE_")]:
        monkeypatch.delenv(key)
    # Recorded so that a command's --uri (which sets ARSENALE_URI) is undone after the test.
    monkeypatch.setenv("ARSENALE_URI", "unset")
    monkeypatch.delenv("ARSENALE_URI")
    for key in ("FORCE_COLOR", "COLUMNS", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ARSENALE_HOME", str(tmp_path / ".arsenale"))
    monkeypatch.setenv("ARSENALE_ACTOR", "tester")
    monkeypatch.chdir(tmp_path)
    yield tmp_path / ".arsenale"
    dispose_all()


@pytest.fixture
def seeded(home: Path, tmp_path: Path) -> dict[str, Any]:
    """Experiment 'fraud' with two finished runs (one with a NaN loss) and artifacts; an empty 'churn'."""
    api = Client().tracking
    fraud = api.create_experiment("fraud", tags={"team": "risk"}, description="card fraud")
    churn = api.create_experiment("churn")
    r1 = api.create_run(fraud.experiment_id, run_name="rf", params={"model": "rf", "C": 0.1},
                        tags={"owner": "ana"})
    api.log_batch(r1.run_id, metrics=[("loss", 0.5, 0), ("loss", 0.25, 1), ("acc", 0.9, 1)])
    api.log_artifact_bytes(r1.run_id, "model/weights.bin", b"\x00\x01weights")
    api.log_artifact_bytes(r1.run_id, "model/config/params.json", b'{"C": 0.1}')
    api.log_artifact_bytes(r1.run_id, "notes.txt", b"hello")
    api.update_run(r1.run_id, status="FINISHED")
    r2 = api.create_run(fraud.experiment_id, run_name="lr", params={"model": "lr", "C": 0.1})
    api.log_batch(r2.run_id, metrics=[("loss", float("nan"), 0), ("acc", float("inf"), 0)])
    api.update_run(r2.run_id, status="FINISHED")
    return {"fraud": fraud.experiment_id, "churn": churn.experiment_id, "r1": r1.run_id, "r2": r2.run_id,
            "db": home / "arsenale.db"}


def cli(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (
        f"exit {result.exit_code} != {code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
        f"exception: {result.exception!r}")
    if code:
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit)
    return result


def strict_json(text: str) -> Any:
    """JSON that a strict parser accepts: no bare NaN or Infinity."""
    def refuse(constant: str) -> Any:
        raise AssertionError(f"bare {constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


# ---- experiments -----------------------------------------------------------------------------


def test_experiments_list_table_and_json(seeded: dict[str, Any]) -> None:
    out = cli("experiments", "list").stdout
    assert "fraud" in out and "churn" in out and "team=risk" in out and "card fraud" in out
    assert ISO.search(out)
    data = strict_json(cli("experiments", "list", "--json").stdout)
    assert [e["name"] for e in data] == ["fraud", "churn"]
    assert isinstance(data[0]["creation_time"], int)
    assert data[0]["tags"] == {"team": "risk"}


def test_experiments_create_with_tags_and_description(home: Path) -> None:
    out = cli("experiments", "create", "exp-a", "--tag", "team=ml", "--tag", "eq=a=b",
              "--description", "[bold]literal").stdout
    assert "exp-a" in out
    exp = Client().tracking.get_experiment_by_name("exp-a")
    assert exp is not None and exp.tags == {"team": "ml", "eq": "a=b"} and exp.description == "[bold]literal"
    created = strict_json(cli("experiments", "create", "exp-b", "--json").stdout)
    assert created["name"] == "exp-b" and created["experiment_id"]
    assert "[bold]literal" in cli("experiments", "list").stdout  # user text is not Rich markup


def test_experiments_delete_and_restore_by_name_and_id(seeded: dict[str, Any]) -> None:
    assert "deleted" in cli("experiments", "delete", "fraud").stdout
    assert [e["name"] for e in strict_json(cli("experiments", "list", "--json").stdout)] == ["churn"]
    deleted = strict_json(cli("experiments", "list", "--view", "deleted", "--json").stdout)
    assert [e["name"] for e in deleted] == ["fraud"]
    assert len(strict_json(cli("experiments", "list", "--view", "all", "--json").stdout)) == 2
    assert "restored" in cli("experiments", "restore", seeded["fraud"]).stdout
    assert Client().tracking.get_experiment(seeded["fraud"]).lifecycle_stage == "active"
    cli("experiments", "delete", seeded["churn"])
    out = cli("experiments", "list", "--view", "deleted").stdout
    assert "churn" in out and "fraud" not in out


def test_experiments_list_empty(home: Path) -> None:
    assert "no active experiments" in cli("experiments", "list").stdout
    assert strict_json(cli("experiments", "list", "--json").stdout) == []


# ---- runs ------------------------------------------------------------------------------------


def test_runs_list_by_name_and_id(seeded: dict[str, Any]) -> None:
    out = cli("runs", "list", "fraud").stdout
    assert seeded["r1"] in out and seeded["r2"] in out
    assert "params.model" in out and "metrics.loss" in out and "NaN" in out and "FINISHED" in out
    page = strict_json(cli("runs", "list", seeded["fraud"], "--json").stdout)
    assert {r["info"]["run_id"] for r in page["runs"]} == {seeded["r1"], seeded["r2"]}
    assert page["next_page_token"] is None
    r2 = next(r for r in page["runs"] if r["info"]["run_id"] == seeded["r2"])
    assert r2["data"]["metrics"] == {"loss": "NaN", "acc": "Infinity"}
    assert isinstance(r2["info"]["start_time"], int)


def test_experiment_reference_is_an_id_or_a_name(seeded: dict[str, Any]) -> None:
    numeric = Client().tracking.create_experiment("2024")
    run = Client().tracking.create_run(numeric.experiment_id, run_name="yearly")
    # No experiment has id 2024, so the name is used; a real id wins over a name.
    page = strict_json(cli("runs", "list", "2024", "--json").stdout)
    assert [r["info"]["run_id"] for r in page["runs"]] == [run.run_id]
    page = strict_json(cli("runs", "list", numeric.experiment_id, "--json").stdout)
    assert [r["info"]["run_id"] for r in page["runs"]] == [run.run_id]
    assert "must not be empty" in cli("runs", "list", " ", code=2).stderr


def test_runs_list_filter_order_and_max_results(seeded: dict[str, Any]) -> None:
    page = strict_json(cli("runs", "list", "fraud", "--filter", "params.model = 'rf'", "--json").stdout)
    assert [r["info"]["run_id"] for r in page["runs"]] == [seeded["r1"]]
    page = strict_json(cli("runs", "list", "fraud", "--order-by", "attributes.run_name ASC", "--json").stdout)
    assert [r["info"]["run_name"] for r in page["runs"]] == ["lr", "rf"]
    page = strict_json(cli("runs", "list", "fraud", "--order-by", "params.model DESC",
                           "--order-by", "attributes.start_time", "--max-results", "1", "--json").stdout)
    assert [r["info"]["run_name"] for r in page["runs"]] == ["rf"] and page["next_page_token"]
    rest = strict_json(cli("runs", "list", "fraud", "--order-by", "params.model DESC", "--max-results", "1",
                           "--page-token", page["next_page_token"], "--json").stdout)
    assert [r["info"]["run_name"] for r in rest["runs"]] == ["lr"]
    assert "more match" in cli("runs", "list", "fraud", "--max-results", "1").stdout
    assert "no runs match" in cli("runs", "list", "churn").stdout


def test_runs_show(seeded: dict[str, Any]) -> None:
    out = cli("runs", "show", seeded["r1"]).stdout
    for text in (seeded["r1"], "rf", "FINISHED", "model", "owner", "ana", "loss", "0.25", "acc", "notes.txt",
                 "model/"):
        assert text in out, text
    assert ISO.search(out)
    data = strict_json(cli("runs", "show", seeded["r1"], "--json").stdout)
    assert data["info"]["run_id"] == seeded["r1"] and isinstance(data["info"]["end_time"], int)
    assert data["data"]["params"] == {"model": "rf", "C": "0.1"}
    assert data["data"]["metrics"] == {"loss": 0.25, "acc": 0.9}
    assert {a["path"]: a["is_dir"] for a in data["artifacts"]} == {"model": True, "notes.txt": False}
    assert strict_json(cli("runs", "show", seeded["r2"], "--json").stdout)["data"]["metrics"]["loss"] == "NaN"


def test_runs_compare(seeded: dict[str, Any]) -> None:
    out = cli("runs", "compare", seeded["r1"], seeded["r2"]).stdout
    assert "params.model" in out and "metrics.loss" in out and "≠" in out
    lines = {line.split()[1] if line.startswith(" ≠") else line.split()[0]: line.startswith(" ≠")
             for line in out.splitlines() if "params." in line or "metrics." in line}
    assert lines == {"params.C": False, "params.model": True, "metrics.acc": True, "metrics.loss": True}
    data = strict_json(cli("runs", "compare", seeded["r1"], seeded["r2"], "--json").stdout)
    assert data["run_ids"] == [seeded["r1"], seeded["r2"]]
    assert data["params"]["C"] == ["0.1", "0.1"] and data["metrics"]["loss"] == [0.25, "NaN"]
    assert data["differing"] == {"params": ["model"], "metrics": ["acc", "loss"]}


def test_runs_search_across_experiments(seeded: dict[str, Any]) -> None:
    api = Client().tracking
    other = api.create_run(seeded["churn"], run_name="gbm", params={"model": "rf"})
    page = strict_json(cli("runs", "search", "fraud", "churn", "--filter", "params.model = 'rf'",
                           "--order-by", "attributes.run_name", "--json").stdout)
    assert [r["info"]["run_id"] for r in page["runs"]] == [other.run_id, seeded["r1"]]
    out = cli("runs", "search", "fraud", seeded["churn"], "--filter", "params.model = 'rf'").stdout
    assert "experiment" in out and other.run_id in out and seeded["r2"] not in out
    cli("runs", "search", "fraud", code=2)  # --filter is required


# ---- artifacts -------------------------------------------------------------------------------


def test_artifacts_list(seeded: dict[str, Any]) -> None:
    out = cli("artifacts", "list", seeded["r1"]).stdout
    assert "model/" in out and "notes.txt" in out and "folder" in out
    inner = strict_json(cli("artifacts", "list", seeded["r1"], "model", "--json").stdout)
    assert [(a["path"], a["is_dir"]) for a in inner] == [("model/config", True), ("model/weights.bin", False)]
    assert inner[1]["size"] == len(b"\x00\x01weights") and inner[1]["digest"]
    assert "has no artifacts" in cli("artifacts", "list", seeded["r2"]).stdout
    assert strict_json(cli("artifacts", "list", seeded["r2"], "--json").stdout) == []


def test_artifacts_get_file_and_folder(seeded: dict[str, Any], tmp_path: Path) -> None:
    out = cli("artifacts", "get", seeded["r1"], "notes.txt").stdout.strip()
    assert Path(out) == (tmp_path / "notes.txt").resolve() and Path(out).read_bytes() == b"hello"
    dest = tmp_path / "dl"
    out = cli("artifacts", "get", seeded["r1"], "model", "--dest", str(dest)).stdout.strip()
    assert Path(out) == (dest / "model").resolve()
    assert (dest / "model" / "weights.bin").read_bytes() == b"\x00\x01weights"
    assert (dest / "model" / "config" / "params.json").read_bytes() == b'{"C": 0.1}'


# ---- audit -----------------------------------------------------------------------------------


def test_audit_list(seeded: dict[str, Any]) -> None:
    cli("experiments", "delete", "churn")
    out = cli("audit", "list").stdout
    assert "experiment.create" in out and "experiment.delete" in out and "tester" in out and ISO.search(out)
    entries = strict_json(cli("audit", "list", "--json").stdout)
    assert [e["action"] for e in entries] == ["experiment.create", "experiment.create", "experiment.delete"]
    assert isinstance(entries[0]["timestamp"], int)
    only = strict_json(cli("audit", "list", "--entity-type", "experiment", "--entity-id", seeded["churn"],
                           "--json").stdout)
    assert [e["action"] for e in only] == ["experiment.create", "experiment.delete"]
    assert len(strict_json(cli("audit", "list", "--limit", "1", "--json").stdout)) == 1
    assert strict_json(cli("audit", "list", "--action", "experiment.restore", "--json").stdout) == []
    assert "no audit entries match" in cli("audit", "list", "--entity-type", "model").stdout
    cli("audit", "list", "--limit", "0", code=2)


def test_audit_verify_ok_then_tampered(seeded: dict[str, Any]) -> None:
    assert "intact" in cli("audit", "verify").stdout
    assert strict_json(cli("audit", "verify", "--json").stdout)["ok"] is True
    with sqlite3.connect(seeded["db"]) as conn:
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    result = cli("audit", "verify", code=5)
    assert "error:" in result.stderr and "entry 2" in result.stderr and "altered" in result.stderr
    report = strict_json(cli("audit", "verify", "--json", code=5).stdout)
    assert report["ok"] is False and report["first_bad_seq"] == 2


def test_audit_verify_detects_a_removed_entry(seeded: dict[str, Any]) -> None:
    cli("experiments", "delete", "churn")
    with sqlite3.connect(seeded["db"]) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = 2")
    assert "entry 2" in cli("audit", "verify", code=5).stderr


# ---- db, server, ui, version -----------------------------------------------------------------


def test_db_upgrade(home: Path, tmp_path: Path) -> None:
    out = cli("db", "upgrade").stdout
    assert f"revision {head_revision()}" in out and "(head)" in out
    other = tmp_path / "elsewhere" / "meta.db"
    out = cli("db", "upgrade", "--uri", f"sqlite:///{other}").stdout
    assert str(other) in out and other.exists()
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()


def test_db_upgrade_refuses_a_server_uri(home: Path) -> None:
    result = cli("db", "upgrade", "--uri", "http://127.0.0.1:5000", code=2)
    assert "is an Arsenale server, not a database" in result.stderr
    assert "Traceback" not in result.output


def test_db_upgrade_refuses_an_unknown_scheme(home: Path) -> None:
    assert "unsupported metadata store URI" in cli("db", "upgrade", "--uri", "mysql://x/y", code=2).stderr


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []
    module = types.ModuleType("arsenale.server.app")

    def serve(host: str, port: int, client: Any = None, *, auth: bool | None = None) -> None:
        calls.append((host, port) if not auth else (host, port, "auth"))

    module.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "arsenale.server.app", module)
    return calls


def test_server_calls_serve(home: Path, fake_server: list[tuple[str, int]]) -> None:
    cli("server")
    cli("server", "--host", "0.0.0.0", "--port", "8080", "--insecure")
    cli("server", "--host", "0.0.0.0", "--port", "8081", "--auth")
    cli("server", "--host", "::1", "--port", "8082")
    assert fake_server == [("127.0.0.1", 5000), ("0.0.0.0", 8080), ("0.0.0.0", 8081, "auth"), ("::1", 8082)]
    cli("server", "--port", "70000", code=2)
    cli("server", "--port", "http", code=2)
    assert len(fake_server) == 4


def test_server_refuses_a_public_address_without_auth(home: Path, fake_server: list[tuple[str, int]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("0.0.0.0", "10.1.2.3", "example.org"):
        assert "refusing to listen on" in cli("server", "--host", host, code=2).stderr
        assert "refusing to listen on" in cli("ui", "--host", host, code=2).stderr
    monkeypatch.setenv("ARSENALE_AUTH", "true")
    cli("server", "--host", "0.0.0.0")
    assert fake_server == [("0.0.0.0", 5000, "auth")]


def test_server_unavailable_is_a_clean_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "arsenale.server.app", None)
    assert "cannot start the server" in cli("server", code=1).stderr


def test_ui_without_display_prints_url(home: Path, fake_server: list[tuple[str, int]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_cli, "has_display", lambda: False)
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url))
    out = cli("ui", "--port", "5050").stdout
    assert "http://127.0.0.1:5050/" in out
    assert fake_server == [("127.0.0.1", 5050)] and opened == []


def test_ui_with_display_opens_browser_once_listening(home: Path, fake_server: list[tuple[str, int]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_cli, "has_display", lambda: True)
    monkeypatch.setattr(server_cli, "wait_until_listening", lambda host, port, timeout=0: True)
    opened: list[str] = []
    done = threading.Event()

    def fake_open(url: str, *args: Any, **kwargs: Any) -> bool:
        opened.append(url)
        done.set()
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    cli("ui", "--host", "0.0.0.0", "--port", "5051", "--insecure")
    assert done.wait(5)
    assert opened == ["http://127.0.0.1:5051/"] and fake_server == [("0.0.0.0", 5051)]


def test_dashboard_url_and_readiness() -> None:
    assert server_cli.dashboard_url("0.0.0.0", 80) == "http://127.0.0.1:80/"
    assert server_cli.dashboard_url("::", 80) == "http://[::1]:80/"
    assert server_cli.dashboard_url("example.org", 5000) == "http://example.org:5000/"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert server_cli.wait_until_listening("127.0.0.1", port, timeout=2)
    assert not server_cli.wait_until_listening("127.0.0.1", port, timeout=0.3)


def test_version() -> None:
    assert cli("version").stdout.strip() == f"arsenale {__version__}"


# ---- the global --uri option and the entry point -----------------------------------------------


def test_global_uri_overrides_the_environment(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    cli("--uri", str(other), "experiments", "create", "remote-ish")
    assert Client(f"sqlite:///{other}").tracking.get_experiment_by_name("remote-ish") is not None
    names = [e["name"] for e in strict_json(cli("--uri", f"sqlite:///{other}", "experiments", "list",
                                                "--json").stdout)]
    assert names == ["remote-ish"]
    assert not (home / "arsenale.db").exists()


def test_main_entry_point_maps_errors_to_exit_codes(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["arsenale", "runs", "show", UNKNOWN_RUN])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and UNKNOWN_RUN in err and "Traceback" not in err


def test_errors_are_red_on_a_terminal(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    stderr = cli("runs", "show", UNKNOWN_RUN, code=3).stderr
    assert "\x1b[31m" in stderr and "error: " in stderr


# ---- bad input: clear message, the error class's exit code, store unchanged --------------------


BAD_COMMANDS: list[tuple[list[str], int, str]] = [
    (["runs", "show", UNKNOWN_RUN], 3, "does not exist"),
    (["runs", "show", "not-a-run-id"], 2, "32-character hex run id"),
    (["runs", "list", "fraud", "--filter", "metrics.loss <"], 2, "invalid filter"),
    (["runs", "list", "fraud", "--filter", "metrics.loss < 'abc'"], 2, ""),
    (["runs", "list", "fraud", "--order-by", "sideways"], 2, ""),
    (["runs", "list", "fraud", "--max-results", "many"], 2, ""),
    (["runs", "list", "fraud", "--max-results", "0"], 2, ""),
    (["runs", "list", "fraud", "--page-token", "garbage"], 2, "page_token"),
    (["runs", "list", "nope"], 3, "no experiment with id or name 'nope'"),
    (["runs", "search", "fraud", "--filter", "params.model === 'rf'"], 2, ""),
    (["runs", "compare", "RUN1"], 2, "at least two"),
    (["runs", "compare", "RUN1", UNKNOWN_RUN], 3, "does not exist"),
    (["artifacts", "list", UNKNOWN_RUN], 3, "does not exist"),
    (["artifacts", "list", "RUN1", "missing/dir"], 3, "no artifact at"),
    (["artifacts", "get", "RUN1", "missing.txt"], 3, "no artifact at"),
    (["artifacts", "get", "RUN1", "../escape"], 2, ""),
    (["experiments", "create", "fraud"], 4, "already exists"),
    (["experiments", "create", "new-exp", "--tag", "novalue"], 2, "KEY=VALUE"),
    (["experiments", "create", "new-exp", "--tag", "a=1", "--tag", "a=2"], 2, "more than once"),
    (["experiments", "create", "new-exp", "--tag", "bad key!=1"], 2, "tags.key"),
    (["experiments", "create", "   "], 2, "must not be empty"),
    (["experiments", "delete", "999"], 3, "no experiment"),
    (["experiments", "restore", "fraud"], 4, "not deleted"),
    (["experiments", "list", "--view", "archived"], 2, ""),
    (["experiments", "frobnicate"], 2, ""),
    (["audit", "list", "--limit", "-1"], 2, ""),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD_COMMANDS,
                         ids=[" ".join(a) for a, _, _ in BAD_COMMANDS])
def test_bad_input_fails_cleanly_and_leaves_the_store_unchanged(seeded: dict[str, Any], args: list[str],
                                                                code: int, message: str) -> None:
    args = [seeded["r1"] if a == "RUN1" else a for a in args]
    before = dump(seeded["db"])
    result = cli(*args, code=code)
    assert result.stderr.strip(), "an error must say what went wrong"
    if message:
        assert message in result.stderr
        assert result.stderr.startswith("error: ")
    assert dump(seeded["db"]) == before
