"""Secrets at rest: webhook URLs, provider keys and storage credentials are stored encrypted, never logged,
never returned by the API after they are set.

    service = SecretService(engine, actor="alice")
    service.set("OPENAI_API_KEY", "sk-…")          # audited without the value
    service.list()                                 # names and times only
    service.resolve("OPENAI_API_KEY")              # the value, for in-process use only

`SecretBox` encrypts with Fernet (AES-128-CBC with HMAC-SHA256, authenticated: a wrong key is an error naming
the secret, never garbage). Stored values read `enc:v1:<Fernet token>`, so a column that once held plain text
(webhook URLs before revision 0015) tells old rows from new ones. Where the keys come from, first match wins:

1. `ARSENALE_ENCRYPTION_KEY`: keys separated by commas, the newest first;
2. `ARSENALE_ENCRYPTION_KEY_FILE`: a file of keys, one a line, the newest first;
3. `<home>/secret.key`, generated once with mode 0600: right for the embedded store. Servers sharing a
   PostgreSQL store must share a key, so give them one of the first two.

Rotation: put a new key first and keep the old ones after it (`arsenale secrets rotate --new-key` does it for
a key file), then `arsenale secrets rotate` re-encrypts every stored value under the new key (and encrypts the
plain rows left from before 0015); after that the old keys may go.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import BaseModel
from sqlalchemy import Engine

from arsenale.config import Settings, get_settings
from arsenale.errors import ArsenaleError, InvalidInput, NotFound
from arsenale.security.tokens import ALL_PROJECTS, check_project
from arsenale.store import tables as t
from arsenale.store.audit import AuditRecord
from arsenale.store.audit import append as audit_append
from arsenale.store.db import read, write

__all__ = ["ENCRYPTED_PREFIX", "MAX_VALUE_BYTES", "EncryptionError", "RotationReport", "SecretBox", "SecretInfo",
           "SecretService", "add_key_to_file", "check_secret_name", "encrypted_column", "new_key", "rotate_all"]

log = logging.getLogger("arsenale.security.secrets")

ENCRYPTED_PREFIX = "enc:v1:"
MAX_VALUE_BYTES = 64 * 1024
HOME_KEY_FILE = "secret.key"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class EncryptionError(ArsenaleError):
    """The configured keys cannot decrypt a stored value, or a key is malformed: a server misconfiguration
    (500), reported with the secret's name and never its value."""

    code: ClassVar[str] = "ENCRYPTION_ERROR"


# ---- keys ----------------------------------------------------------------------------------------------


def new_key() -> str:
    """A fresh Fernet key (32 random bytes, url-safe base64)."""
    return Fernet.generate_key().decode()


def _keys_in(text: str) -> list[str]:
    lines = (line.strip() for line in text.replace(",", "\n").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _write_private(path: Path, text: str, *, replace: bool) -> bool:
    """Write `text` to `path` with mode 0600 through a temporary file. Without `replace`, an existing
    file wins (False): two processes making the home key at once end up with the same one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-", suffix=".tmp")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic, and fails when the file exists
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def key_file(settings: Settings | None = None) -> Path | None:
    """The key file in use: `ARSENALE_ENCRYPTION_KEY_FILE`, else `<home>/secret.key`; None when the keys
    come from `ARSENALE_ENCRYPTION_KEY`."""
    settings = settings or get_settings()
    if settings.encryption_key is not None:
        return None
    if settings.encryption_key_file is not None:
        return settings.encryption_key_file.expanduser()
    return settings.resolved_home() / HOME_KEY_FILE


def _load_keys(settings: Settings) -> tuple[list[str], str]:
    if settings.encryption_key is not None:
        return _keys_in(settings.encryption_key.get_secret_value()), "ARSENALE_ENCRYPTION_KEY"
    path = key_file(settings)
    assert path is not None
    if settings.encryption_key_file is not None:
        try:
            return _keys_in(path.read_text()), f"ARSENALE_ENCRYPTION_KEY_FILE ({path})"
        except OSError as exc:
            raise EncryptionError(f"cannot read the encryption key file {path}: {exc.strerror}",
                                  field="encryption_key_file") from None
    if not path.exists() and _write_private(path, new_key() + "\n", replace=False):
        log.info("made an encryption key for stored secrets at %s (mode 0600): back it up with the store", path)
    if path.stat().st_mode & 0o077:
        log.warning("the encryption key file %s can be read by other users: chmod 600 it", path)
    return _keys_in(path.read_text()), str(path)


def add_key_to_file(path: Path) -> int:
    """Put a new key first in a key file, keeping the old ones after it; the number of keys it now holds."""
    old = _keys_in(path.read_text()) if path.exists() else []
    keys = [new_key(), *old]
    _write_private(path, "\n".join(keys) + "\n", replace=True)
    return len(keys)


# ---- the box -------------------------------------------------------------------------------------------


class SecretBox:
    """Encrypts with the first key; decrypts with any of them (newest first)."""

    def __init__(self, keys: Sequence[str | bytes], *, source: str = "the given keys") -> None:
        if not keys:
            raise EncryptionError(f"no encryption key in {source}", field="encryption_key")
        fernets = []
        for i, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise EncryptionError(f"encryption key #{i} in {source} is not a Fernet key (32 url-safe "
                                      "base64-encoded bytes; `arsenale secrets new-key` makes one)",
                                      field="encryption_key") from None
        self._primary = fernets[0]
        self._all = MultiFernet(fernets)
        self.source = source
        self.key_count = len(fernets)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> SecretBox:
        """The keys named by the settings (see the module's docstring)."""
        keys, source = _load_keys(settings or get_settings())
        return cls(keys, source=source)

    def __repr__(self) -> str:
        return f"SecretBox(keys={self.key_count}, source={self.source!r})"

    @staticmethod
    def is_encrypted(stored: str) -> bool:
        return stored.startswith(ENCRYPTED_PREFIX)

    def encrypt(self, value: str) -> str:
        return ENCRYPTED_PREFIX + self._primary.encrypt(value.encode()).decode()

    def decrypt(self, stored: str, *, what: str) -> str:
        """The value; `what` names it in the error when no key opens it (e.g. "secret 'db-password'")."""
        if not self.is_encrypted(stored):
            raise EncryptionError(f"{what} is not stored encrypted (no {ENCRYPTED_PREFIX!r} marker)")
        try:
            return self._all.decrypt(stored[len(ENCRYPTED_PREFIX):].encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise EncryptionError(
                f"{what} cannot be decrypted with the {self.key_count} key(s) from {self.source}: it was encrypted "
                "with another key (keep the old key after the new one until `arsenale secrets rotate` has run)"
            ) from None

    def reveal(self, stored: str, *, what: str) -> str:
        """Like `decrypt`, but a value stored before encryption (no marker) is returned as it is."""
        return self.decrypt(stored, what=what) if self.is_encrypted(stored) else stored

    def rotate(self, stored: str, *, what: str) -> str | None:
        """`stored` re-encrypted under the first key (a plain value: encrypted); None when it already is."""
        if not self.is_encrypted(stored):
            return self.encrypt(stored)
        token = stored[len(ENCRYPTED_PREFIX):].encode()
        try:
            self._primary.decrypt(token)
            return None
        except InvalidToken:
            pass
        return self.encrypt(self.decrypt(stored, what=what))


# ---- rotation over every encrypted column ----------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    table: sa.Table
    column: str
    label: str  # names a row in errors, formatted with the row's primary-key columns


_ENCRYPTED: list[_Column] = []


def encrypted_column(table: sa.Table, column: str, label: str) -> None:
    """Declare a column that holds `SecretBox` values (plain text allowed in old rows), so `rotate_all`
    re-encrypts it. `label` names a row in errors, e.g. "the URL of webhook {webhook_id}" (the fields are the
    primary-key columns). Components call this once, at import."""
    if column not in table.c:
        raise ValueError(f"{table.name} has no column {column!r}")
    label.format(**{c.name: "" for c in table.primary_key.columns})  # a bad template fails here, not mid-rotation
    if not any(c.table is table and c.column == column for c in _ENCRYPTED):
        _ENCRYPTED.append(_Column(table, column, label))


encrypted_column(t.secrets, "ciphertext", "secret {name!r} (project {project!r})")
encrypted_column(t.webhooks, "url", "the URL of webhook {webhook_id}")
encrypted_column(t.webhooks, "secret", "the signing secret of webhook {webhook_id}")
encrypted_column(t.alert_rules, "notify", "the channels of alert rule {id}")


class RotationReport(BaseModel):
    """What `rotate_all` did, per `table.column`: values re-encrypted (or encrypted for the first time)."""

    reencrypted: dict[str, int]
    unchanged: dict[str, int]


def rotate_all(engine: Engine, box: SecretBox) -> RotationReport:
    """Re-encrypt every declared column under the box's first key. Each table is read and every row
    decrypted before anything is written, so a value no key opens stops the rotation with its name and
    leaves that table as it was."""
    changed: dict[str, int] = {}
    same: dict[str, int] = {}
    for col in _ENCRYPTED:
        keys = list(col.table.primary_key.columns)
        target = col.table.c[col.column]
        with read(engine) as conn:
            rows = conn.execute(sa.select(*keys, target)).all()
        updates = []
        for row in rows:
            what = col.label.format(**{k.name: v for k, v in zip(keys, row[:-1], strict=True)})
            new = box.rotate(row[-1], what=what)
            if new is not None:
                updates.append((row, new))
        with write(engine) as conn:
            for row, new in updates:  # only if nobody changed the value meanwhile
                conn.execute(sa.update(col.table).where(*(k == v for k, v in zip(keys, row[:-1], strict=True)),
                                                        target == row[-1]).values({col.column: new}))
        name = f"{col.table.name}.{col.column}"
        changed[name] = len(updates)
        same[name] = len(rows) - len(updates)
    return RotationReport(reencrypted=changed, unchanged=same)


# ---- named secrets ---------------------------------------------------------------------------------------


class SecretInfo(BaseModel):
    """A secret's name and history; its value is never part of it."""

    name: str
    project: str
    creation_time: int
    created_by: str
    update_time: int
    updated_by: str


def check_secret_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = repr(name[:100]) if isinstance(name, str) else type(name).__name__
        raise InvalidInput("a secret's name is 1-128 letters, digits, '.', '_' or '-' starting with a letter or "
                           f"digit; got {shown}", field="name")
    return name


def _check_value(value: Any) -> str:
    """Never echoes the value: the error names only its type or size."""
    if not isinstance(value, str):
        raise InvalidInput(f"a secret's value must be a string, got {type(value).__name__}", field="value")
    if not value:
        raise InvalidInput("a secret's value must not be empty", field="value")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_VALUE_BYTES:
        raise InvalidInput(f"a secret's value is {size} bytes; the limit is {MAX_VALUE_BYTES}", field="value")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidInput("a secret's value must be valid text (it holds a lone surrogate)", field="value") from None
    return value


class SecretService:
    """Named secrets, per project or for every project (`"*"`), encrypted at rest and audited without values."""

    def __init__(self, engine: Engine, actor: str, box: SecretBox | None = None) -> None:
        self.engine = engine
        self.actor = actor
        self._box = box

    def __repr__(self) -> str:
        return f"SecretService(actor={self.actor!r})"

    @property
    def box(self) -> SecretBox:
        """Built on first use, so a store without secrets never needs a key."""
        if self._box is None:
            self._box = SecretBox.from_settings()
        return self._box

    def set(self, name: str, value: str, *, project: str = ALL_PROJECTS) -> SecretInfo:
        """Create the secret or replace its value; the audit entry says which, never what."""
        name, project, value = check_secret_name(name), check_project(project), _check_value(value)
        ciphertext = self.box.encrypt(value)
        now = int(time.time() * 1000)
        key = (t.secrets.c.project == project, t.secrets.c.name == name)
        with write(self.engine) as conn:
            old = conn.execute(sa.select(t.secrets).where(*key)).mappings().first()
            if old is None:
                row = {"name": name, "project": project, "ciphertext": ciphertext, "creation_time": now,
                       "created_by": self.actor, "update_time": now, "updated_by": self.actor}
                conn.execute(sa.insert(t.secrets).values(**row))
            else:
                row = {**old, "ciphertext": ciphertext, "update_time": now, "updated_by": self.actor}
                conn.execute(sa.update(t.secrets).where(*key).values(ciphertext=ciphertext, update_time=now,
                                                                     updated_by=self.actor))
            audit_append(conn, AuditRecord(self.actor, "secret.set", "secret", f"{project}/{name}",
                                           {"name": name, "project": project, "replaced": old is not None}), now)
        return _info(row)

    def list(self, *, project: str | None = None) -> list[SecretInfo]:
        """Every secret's name and times (in one project and `"*"` when `project` is given)."""
        q = sa.select(*(c for c in t.secrets.c if c.name != "ciphertext")).order_by(t.secrets.c.project,
                                                                                    t.secrets.c.name)
        if project is not None:
            q = q.where(t.secrets.c.project.in_({check_project(project), ALL_PROJECTS}))
        with read(self.engine) as conn:
            return [_info(r) for r in conn.execute(q).mappings().all()]

    def get(self, name: str, *, project: str = ALL_PROJECTS) -> SecretInfo:
        """One secret's name and times (not its value)."""
        name, project = check_secret_name(name), check_project(project)
        with read(self.engine) as conn:
            row = conn.execute(sa.select(t.secrets).where(t.secrets.c.project == project,
                                                          t.secrets.c.name == name)).mappings().first()
        if row is None:
            raise NotFound(_missing(name, project), field="name")
        return _info(row)

    def delete(self, name: str, *, project: str = ALL_PROJECTS) -> None:
        name, project = check_secret_name(name), check_project(project)
        now = int(time.time() * 1000)
        with write(self.engine) as conn:
            gone = conn.execute(sa.delete(t.secrets).where(t.secrets.c.project == project,
                                                           t.secrets.c.name == name)).rowcount
            if not gone:
                raise NotFound(_missing(name, project), field="name")
            audit_append(conn, AuditRecord(self.actor, "secret.delete", "secret", f"{project}/{name}",
                                           {"name": name, "project": project}), now)

    def resolve(self, name: str, *, project: str | None = None) -> str:
        """The value, for use inside this process only (a provider call, a storage client): the project's
        own secret when there is one, else the one for every project."""
        name = check_secret_name(name)
        projects = [ALL_PROJECTS] if project in (None, ALL_PROJECTS) else [check_project(project), ALL_PROJECTS]
        with read(self.engine) as conn:
            rows = {r.project: r.ciphertext for r in conn.execute(
                sa.select(t.secrets.c.project, t.secrets.c.ciphertext)
                .where(t.secrets.c.name == name, t.secrets.c.project.in_(projects))).all()}
        for p in projects:
            if p in rows:
                return self.box.decrypt(rows[p], what=f"secret {name!r} (project {p!r})")
        raise NotFound(_missing(name, projects[0]), field="name")

    def rotate(self) -> RotationReport:
        """Re-encrypt every stored secret, webhook URL and signing secret under the first key (audited)."""
        report = rotate_all(self.engine, self.box)
        now = int(time.time() * 1000)
        with write(self.engine) as conn:
            audit_append(conn, AuditRecord(self.actor, "secret.rotate", "secret", "*",
                                           {"reencrypted": report.reencrypted, "keys": self.box.key_count}), now)
        return report


def _info(row: Any) -> SecretInfo:
    return SecretInfo(**{k: row[k] for k in SecretInfo.model_fields})


def _missing(name: str, project: str) -> str:
    where = "for every project" if project == ALL_PROJECTS else f"in project {project!r} or for every project"
    return f"no secret {name!r} {where}"
