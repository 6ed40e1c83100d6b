"""Secrets at rest: the box, the named-secrets service, rotation, and webhook URLs and signing secrets stored
encrypted. Values must never show in the table, logs, the audit trail, reprs or errors. SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from arsenale.config import get_settings
from arsenale.errors import InvalidInput, NotFound
from arsenale.platform import Client
from arsenale.registry.webhooks import WebhookService, redact_url
from arsenale.security.secrets import (
    ENCRYPTED_PREFIX,
    MAX_VALUE_BYTES,
    EncryptionError,
    SecretBox,
    SecretService,
    add_key_to_file,
    new_key,
)
from arsenale.store import tables as t
from arsenale.store.db import get_engine

VALUE = "sk-live-0123456789abcdef-TOP-SECRET"
HOOK_URL = "https://hooks.example.com/services/T000/B000/XXXXSECRETPATH?token=abc123"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    k = new_key()
    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY", k)
    return k


@pytest.fixture
def service(store_uri: str, key: str) -> SecretService:
    return SecretService(get_engine(store_uri), actor="alice")


def rows(service: SecretService, table: sa.Table = t.secrets) -> list[Any]:
    with service.engine.connect() as conn:
        return list(conn.execute(sa.select(table)).all())


def audit_text(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(str(tuple(r)) for r in conn.execute(sa.select(t.audit_log)).all())


# ---- the box ---------------------------------------------------------------------------------------------


def test_box_round_trip_and_authenticated() -> None:
    key = new_key()
    box = SecretBox([key])
    stored = box.encrypt(VALUE)
    assert stored.startswith(ENCRYPTED_PREFIX) and VALUE not in stored
    assert box.decrypt(stored, what="secret 'x'") == VALUE
    assert box.encrypt(VALUE) != stored  # a fresh IV each time
    tampered = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    with pytest.raises(EncryptionError, match="secret 'x' cannot be decrypted"):
        box.decrypt(tampered, what="secret 'x'")
    assert key not in repr(box) and repr(box) == "SecretBox(keys=1, source='the given keys')"
    assert box.reveal("https://plain.example.com", what="a url") == "https://plain.example.com"
    with pytest.raises(EncryptionError, match="not stored encrypted"):
        box.decrypt("plain", what="secret 'x'")


def test_wrong_key_is_a_clear_error_naming_the_secret() -> None:
    stored = SecretBox([new_key()]).encrypt(VALUE)
    with pytest.raises(EncryptionError) as err:
        SecretBox([new_key()], source="ARSENALE_ENCRYPTION_KEY").decrypt(stored, what="secret 'db-password'")
    assert "secret 'db-password'" in err.value.message and "ARSENALE_ENCRYPTION_KEY" in err.value.message
    assert VALUE not in str(err.value) and err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize("keys", [[], ["not-a-key"], [b"short"], [new_key(), "x" * 44]])
def test_malformed_keys_are_refused_without_echoing_them(keys: list[Any]) -> None:
    with pytest.raises(EncryptionError) as err:
        SecretBox(keys, source="test")
    for k in keys:
        assert str(k) not in err.value.message


def test_home_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    box = SecretBox.from_settings()
    path = get_settings().resolved_home() / "secret.key"
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    again = SecretBox.from_settings()
    assert path.read_text() == first and again.decrypt(box.encrypt(VALUE), what="x") == VALUE
    assert first.strip() not in repr(box)


def test_keys_from_env_and_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    stored_old = SecretBox([old]).encrypt(VALUE)
    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY", f"{new}, {old}")
    box = SecretBox.from_settings()
    assert box.key_count == 2 and box.decrypt(stored_old, what="x") == VALUE
    assert SecretBox([new]).decrypt(box.encrypt(VALUE), what="x") == VALUE  # encrypts with the first
    monkeypatch.delenv("ARSENALE_ENCRYPTION_KEY")
    key_file = tmp_path / "keys"
    key_file.write_text(f"# newest first\n{new}\n\n{old}\n")
    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY_FILE", str(key_file))
    assert SecretBox.from_settings().key_count == 2
    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(EncryptionError, match="cannot read the encryption key file"):
        SecretBox.from_settings()
    assert "encryption_key=None" in repr(get_settings()) or "**********" in repr(get_settings())


def test_settings_repr_hides_the_key(key: str) -> None:
    assert key not in repr(get_settings()) and key not in str(get_settings().model_dump())


# ---- named secrets --------------------------------------------------------------------------------------


def test_set_list_resolve_delete(service: SecretService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    info = service.set("OPENAI_API_KEY", VALUE)
    assert (info.name, info.project, info.created_by, info.updated_by) == ("OPENAI_API_KEY", "*", "alice", "alice")
    assert service.resolve("OPENAI_API_KEY") == VALUE
    [row] = rows(service)
    assert row.ciphertext.startswith(ENCRYPTED_PREFIX) and VALUE not in row.ciphertext

    service.actor = "bob"
    replaced = service.set("OPENAI_API_KEY", "second-value")
    assert replaced.creation_time == info.creation_time and replaced.updated_by == "bob"
    assert service.resolve("OPENAI_API_KEY") == "second-value"
    service.set("OPENAI_API_KEY", "fraud-only", project="fraud")
    service.set("S3_SECRET", VALUE + "-s3")
    listed = service.list()
    assert [(s.project, s.name) for s in listed] == [("*", "OPENAI_API_KEY"), ("*", "S3_SECRET"),
                                                      ("fraud", "OPENAI_API_KEY")]
    assert all("value" not in s.model_dump() and "ciphertext" not in s.model_dump() for s in listed)
    assert [s.name for s in service.list(project="fraud")] == ["OPENAI_API_KEY", "S3_SECRET", "OPENAI_API_KEY"]
    assert service.resolve("OPENAI_API_KEY", project="fraud") == "fraud-only"
    assert service.resolve("OPENAI_API_KEY", project="churn") == "second-value"  # falls back to "*"
    assert service.resolve("S3_SECRET", project="fraud") == VALUE + "-s3"
    assert service.get("S3_SECRET").name == "S3_SECRET"

    service.delete("OPENAI_API_KEY", project="fraud")
    assert service.resolve("OPENAI_API_KEY", project="fraud") == "second-value"
    with pytest.raises(NotFound):
        service.delete("OPENAI_API_KEY", project="fraud")

    # Nothing of any value in the audit trail, the logs or the reprs.
    trail = audit_text(service.engine)
    assert "secret.set" in trail and "secret.delete" in trail and '"replaced":true' in trail
    for value in (VALUE, "second-value", "fraud-only"):
        assert value not in trail and value not in caplog.text and value not in repr(service)
    assert VALUE not in repr(info) and VALUE not in repr(listed)


def test_unknown_names_are_not_found(service: SecretService) -> None:
    for call in (lambda: service.resolve("nope"), lambda: service.get("nope"), lambda: service.delete("nope"),
                 lambda: service.resolve("nope", project="fraud")):
        with pytest.raises(NotFound) as err:
            call()
        assert err.value.field == "name"


@pytest.mark.parametrize("name", ["", " x", "../etc", "a/b", "x" * 129, "-lead", 42, None, "naïve", "a b"])
def test_bad_names_are_refused_and_nothing_stored(service: SecretService, name: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        service.set(name, VALUE)
    assert err.value.field == "name" and rows(service) == []


@pytest.mark.parametrize("value", ["", 42, None, b"bytes", ["list"], "x" * (MAX_VALUE_BYTES + 1),
                                   "é" * (MAX_VALUE_BYTES // 2 + 1), "lone \ud800 surrogate"])
def test_bad_values_are_refused_without_echo(service: SecretService, value: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        service.set("GOOD_NAME", value)
    assert err.value.field == "value" and rows(service) == []
    if isinstance(value, str) and value:
        assert value[:20] not in err.value.message


def test_bad_projects_are_refused(service: SecretService) -> None:
    for project in ("", "a/b", 3, "x" * 200):
        with pytest.raises(InvalidInput):
            service.set("GOOD_NAME", VALUE, project=project)  # type: ignore[arg-type]
    assert rows(service) == []


def test_largest_value_round_trips(service: SecretService) -> None:
    big = "v" * MAX_VALUE_BYTES
    service.set("BIG", big)
    assert service.resolve("BIG") == big


def test_a_wrong_key_names_the_secret(service: SecretService, monkeypatch: pytest.MonkeyPatch) -> None:
    service.set("DB_PASSWORD", VALUE)
    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY", new_key())
    other = SecretService(service.engine, actor="alice")
    with pytest.raises(EncryptionError) as err:
        other.resolve("DB_PASSWORD")
    assert "secret 'DB_PASSWORD'" in err.value.message and VALUE not in str(err.value)
    with pytest.raises(EncryptionError, match="secret 'DB_PASSWORD'"):
        other.rotate()
    assert service.resolve("DB_PASSWORD") == VALUE  # the failed rotation changed nothing


# ---- rotation and webhooks --------------------------------------------------------------------------------


def test_rotation_reencrypts_everything_then_old_key_can_go(store_uri: str, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY", old)
    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="alice")
    client.secrets.set("A", "value-a")
    client.secrets.set("B", "value-b", project="fraud")
    hook = client.webhooks.create(HOOK_URL, ["*"], secret="signing-secret")
    # A row from before encryption: plain URL and secret.
    with client.secrets.engine.begin() as conn:
        conn.execute(sa.insert(t.webhooks).values(webhook_id="f" * 32, url="https://old.example.com/plain/path",
                                                  events='["*"]', model_name=None, secret="old-plain-secret",
                                                  active=True, creation_time=1))
    assert {h.url for h in client.webhooks.list()} == {"https://hooks.example.com/…", "https://old.example.com/…"}

    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY", f"{new},{old}")
    rotated = Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="alice")
    report = rotated.secrets.rotate()
    assert report.reencrypted == {"secrets.ciphertext": 2, "webhooks.url": 2, "webhooks.secret": 2,
                                  "alert_rules.notify": 0}
    assert rotated.secrets.rotate().reencrypted == {"secrets.ciphertext": 0, "webhooks.url": 0,
                                                    "webhooks.secret": 0, "alert_rules.notify": 0}
    with rotated.secrets.engine.connect() as conn:
        hooks = conn.execute(sa.select(t.webhooks)).all()
    assert all(h.url.startswith(ENCRYPTED_PREFIX) and h.secret.startswith(ENCRYPTED_PREFIX) for h in hooks)

    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY", new)  # the old key is gone
    only_new = Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="alice")
    assert only_new.secrets.resolve("A") == "value-a"
    assert only_new.secrets.resolve("B", project="fraud") == "value-b"
    box = only_new.secrets.box
    by_id = {h.webhook_id: h for h in hooks}
    assert box.decrypt(by_id[hook.webhook_id].url, what="u") == HOOK_URL
    assert box.decrypt(by_id["f" * 32].secret, what="s") == "old-plain-secret"
    trail = audit_text(only_new.secrets.engine)
    assert "secret.rotate" in trail and "value-a" not in trail and "signing-secret" not in trail


def test_webhook_url_and_secret_are_encrypted_at_rest(store_uri: str, key: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    svc = WebhookService(get_engine(store_uri), backoff=0.01, timeout=0.5, max_attempts=1)
    try:
        created = svc.create(HOOK_URL, ["*"], secret="signing-secret")
        assert created.url == HOOK_URL and created.secret == "signing-secret"  # shown once, whole
        with svc.engine.connect() as conn:
            [row] = conn.execute(sa.select(t.webhooks)).all()
        assert HOOK_URL not in row.url and "XXXXSECRETPATH" not in row.url and "signing-secret" not in row.secret
        [listed] = svc.list()
        assert listed.url == "https://hooks.example.com/…" and "secret" not in listed.model_dump()
        assert "signing-secret" not in repr(svc) and "XXXXSECRETPATH" not in repr(svc)
        # A failed delivery logs the redacted URL only.
        svc.create("http://127.0.0.1:9/private/TOKEN123", ["*"])
        svc.emit("model.registered", {"version": 1}, "m")
        assert svc.flush(10)
        assert "TOKEN123" not in caplog.text and "XXXXSECRETPATH" not in caplog.text
        assert "signing-secret" not in caplog.text
    finally:
        svc.close(timeout=10)


def test_a_webhook_no_key_opens_is_recorded_failed_not_sent(store_uri: str, key: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    engine = get_engine(store_uri)
    WebhookService(engine).create("http://127.0.0.1:9/hook", ["*"])
    monkeypatch.setenv("ARSENALE_ENCRYPTION_KEY", new_key())
    svc = WebhookService(engine, max_attempts=1)
    try:
        [listed] = svc.list()
        assert listed.url == "(encrypted with another key)"
        svc.emit("model.registered", {}, "m")
        assert svc.flush(10)
        [delivery] = svc.deliveries(listed.webhook_id)
        assert delivery.status == "failed" and "cannot be decrypted" in (delivery.last_error or "")
        assert delivery.attempts == 0
    finally:
        svc.close(timeout=10)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://h.example.com", "https://h.example.com"),
    ("https://h.example.com/", "https://h.example.com"),
    ("https://user:pw@h.example.com:8443/a?b=c", "https://h.example.com:8443/…"),
    ("http://[::1]:9/x", "http://[::1]:9/…"),
    ("http://h.example.com?token=1", "http://h.example.com/…"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_add_key_to_file_keeps_old_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    first = new_key()
    path.write_text(first + "\n")
    os.chmod(path, 0o600)
    assert add_key_to_file(path) == 2
    lines = path.read_text().split()
    assert lines[1] == first and lines[0] != first and stat.S_IMODE(path.stat().st_mode) == 0o600


# ---- the migration ----------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """An empty database with no schema yet (the `store_uri` stores are already at head)."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
        sa.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys=ON"))
        yield engine
        engine.dispose()
        return
    import psycopg

    from tests.conftest import PG_ADMIN_URL

    request.getfixturevalue("pg_database")  # fails in CI when PostgreSQL is down
    name = f"ars_mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(psycopg.sql.Identifier(name)))


def test_upgrade_keeps_old_plain_webhooks_and_their_deliveries(fresh_engine: Any, key: str) -> None:
    from arsenale.store.migrate import upgrade

    upgrade(fresh_engine, "0014")
    with fresh_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO webhooks (webhook_id, url, events, model_name, secret, active, "
                             "creation_time) VALUES ('a', 'https://old.example.com/x', '[\"*\"]', NULL, 'plain', "
                             ":t, 1)"), {"t": True})
        conn.execute(sa.text("INSERT INTO webhook_deliveries (webhook_id, event, payload, status, attempts, "
                             "timestamp) VALUES ('a', 'model.registered', '{}', 'delivered', 1, 1)"))
    upgrade(fresh_engine, "0015")
    with fresh_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_deliveries")).scalar_one() == 1
    svc = WebhookService(fresh_engine)
    try:
        assert svc.list()[0].url == "https://old.example.com/…"
        long_url = "https://h.example.com/" + "p" * 1970
        hook = svc.create(long_url, ["*"], secret="s" * 256)  # the ciphertext is longer than the old widths
        assert svc.box.decrypt(_stored(fresh_engine, hook.webhook_id).url, what="u") == long_url
        assert rotate_report(fresh_engine)["webhooks.url"] == 1  # the old plain row
    finally:
        svc.close(timeout=5)


def _stored(engine: Any, webhook_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(t.webhooks).where(t.webhooks.c.webhook_id == webhook_id)).one()


def rotate_report(engine: Any) -> dict[str, int]:
    from arsenale.security.secrets import rotate_all

    return rotate_all(engine, SecretBox.from_settings()).reencrypted
