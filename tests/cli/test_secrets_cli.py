"""`arsenale secrets …` against the embedded store (key made in <home>/secret.key) and through a live server:
values come from a file or stdin, never a flag, and no command prints one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from arsenale.cli.main import app
from arsenale.config import get_settings
from arsenale.platform import Client
from arsenale.security.secrets import ENCRYPTED_PREFIX, MAX_VALUE_BYTES
from arsenale.server.app import create_app
from arsenale.store import tables as t
from tests.conftest import LiveServer

runner = CliRunner()
VALUE = "AKIA-super-secret-credential-42"


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    out = runner.invoke(app, list(args), input=stdin)
    return out.exit_code, out.output


def test_set_from_stdin_and_file_list_delete(tmp_path: Path) -> None:
    code, output = invoke("secrets", "set", "AWS_SECRET", stdin=VALUE + "\n")
    assert code == 0, output
    assert VALUE not in output
    value_file = tmp_path / "v.txt"
    value_file.write_text(VALUE + "-fraud\n")
    code, output = invoke("secrets", "set", "AWS_SECRET", "--project", "fraud", "--value-file", str(value_file))
    assert code == 0, output
    client = Client()
    assert client.secrets.resolve("AWS_SECRET") == VALUE  # the trailing newline is not part of it
    assert client.secrets.resolve("AWS_SECRET", project="fraud") == VALUE + "-fraud"
    assert (get_settings().resolved_home() / "secret.key").exists()

    code, output = invoke("secrets", "list", "--json")
    assert code == 0 and VALUE not in output
    assert [(x["project"], x["name"]) for x in json.loads(output)] == [("*", "AWS_SECRET"), ("fraud", "AWS_SECRET")]
    code, output = invoke("secrets", "list")
    assert code == 0 and "AWS_SECRET" in output and VALUE not in output
    assert invoke("secrets", "delete", "AWS_SECRET", "--project", "fraud")[0] == 0
    assert [s.project for s in client.secrets.list()] == ["*"]


def test_there_is_no_value_flag() -> None:
    code, output = invoke("secrets", "set", "X", "--value", VALUE)
    assert code == 2 and "No such option" in output
    assert Client().secrets.list() == []


def test_bad_input_exits_non_zero_and_stores_nothing(tmp_path: Path) -> None:
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    for args, stdin, code in ((["set", "bad/name"], VALUE, 2), (["set", "OK"], "", 2),
                              (["set", "OK"], "v" * (MAX_VALUE_BYTES + 1), 2),
                              (["set", "OK", "--value-file", str(tmp_path / "missing")], None, 2),
                              (["set", "OK", "--value-file", str(binary)], None, 2),
                              (["delete", "NOPE"], None, 3), (["set", "OK", "--project", "a/b"], VALUE, 2)):
        exit_code, output = invoke("secrets", *args, stdin=stdin)
        assert exit_code == code, (args, output)
        assert VALUE not in output and "v" * 100 not in output
    assert Client().secrets.list() == []


def test_rotate_with_a_new_key_in_the_home_file() -> None:
    assert invoke("secrets", "set", "A", stdin=VALUE)[0] == 0
    hook = Client().webhooks.create("https://hooks.example.com/secret/path", ["*"])
    key_path = get_settings().resolved_home() / "secret.key"
    first_key = key_path.read_text().split()[0]
    code, output = invoke("secrets", "rotate", "--new-key")
    assert code == 0, output
    assert "secrets.ciphertext: 1 re-encrypted" in output and "webhooks.url: 1 re-encrypted" in output
    keys = key_path.read_text().split()
    assert len(keys) == 2 and keys[1] == first_key and first_key not in output
    key_path.write_text(keys[0] + "\n")  # the old key can go now
    client = Client()
    assert client.secrets.resolve("A") == VALUE
    with client.secrets.engine.connect() as conn:
        url = conn.execute(sa.select(t.webhooks.c.url)).scalar_one()
    assert url.startswith(ENCRYPTED_PREFIX)
    assert client.secrets.box.decrypt(url, what="u") == "https://hooks.example.com/secret/path"
    assert client.webhooks.list()[0].webhook_id == hook.webhook_id
    code, output = invoke("secrets", "rotate", "--json")
    assert code == 0 and json.loads(output)["reencrypted"]["secrets.ciphertext"] == 0


def test_new_key_with_an_env_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = invoke("secrets", "new-key")
    assert code == 0 and len(output.strip()) == 44
    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY", output.strip())
    code, output = invoke("secrets", "rotate", "--new-key")
    assert code == 2 and "ARSENALE_ENCRYPTION_KEY" in output


def test_through_a_live_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = Client(f"sqlite:///{tmp_path}/db.sqlite", artifacts=str(tmp_path / "artifacts"), actor="server")
    with LiveServer(create_app(local)) as server:
        monkeypatch.setenv("ARSENALE_URI", server.url)  # `--uri` sets it for the process: undone after the test
        assert invoke("--uri", server.url, "secrets", "set", "REMOTE", stdin=VALUE)[0] == 0
        code, output = invoke("--uri", server.url, "secrets", "list", "--json")
        assert code == 0 and [x["name"] for x in json.loads(output)] == ["REMOTE"] and VALUE not in output
        assert local.secrets.resolve("REMOTE") == VALUE
        code, output = invoke("--uri", server.url, "secrets", "rotate", "--new-key")
        assert code == 2
        assert invoke("--uri", server.url, "secrets", "delete", "REMOTE")[0] == 0
    assert local.secrets.list() == []
