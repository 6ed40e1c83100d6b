"""API tokens: created with a role and a project, shown once, kept only as a salted hash.

    service = TokenService(engine, actor="alice")
    info, secret = service.create("ci", role="editor", project="fraud", expires="90d")
    service.verify(secret)        # -> Principal(token_id, name, role, project), or Unauthenticated

A token reads `ars_<id>_<secret>`: the id (public, 12 hex characters) finds the row in one indexed
lookup, and the secret (43 url-safe characters, 256 random bits) is compared as SHA-256(salt + secret) with
`hmac.compare_digest`. A fast hash is right here, unlike for passwords: nobody can guess 256 bits, so a
slow hash would only add latency to every request. Creating and revoking are audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy import Engine

from arsenale.errors import InvalidInput, NotFound, Unauthenticated
from arsenale.store import tables as t
from arsenale.store.audit import AuditRecord
from arsenale.store.audit import append as audit_append
from arsenale.tracking.models import check_name
from arsenale.units import parse_duration

__all__ = ["ALL_PROJECTS", "ROLES", "CachedVerifier", "Principal", "TokenInfo", "TokenService", "remote_verify",
           "role_allows"]

ROLES = ("viewer", "editor", "admin")  # each role can do what the ones before it can
ALL_PROJECTS = "*"
MAX_LIFETIME_S = 5 * 366 * 86_400
_TOKEN = re.compile(r"ars_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_USED_EVERY_MS = 60_000  # last_used_at is refreshed at most once a minute per token: no write per request


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: recorded as `token:<name>` in the audit trail."""

    token_id: str
    name: str
    role: str
    project: str

    @property
    def actor(self) -> str:
        return f"token:{self.name}"

    def can(self, role: str, project: str | None = None) -> bool:
        """Whether this principal holds at least `role` (in `project`, when given)."""
        if project is not None and self.project not in (ALL_PROJECTS, project):
            return False
        return role_allows(self.role, role)


def role_allows(held: str, needed: str) -> bool:
    return ROLES.index(held) >= ROLES.index(needed)


class TokenInfo(BaseModel):
    """Everything about a token except its secret, which is never stored."""

    id: str
    name: str
    project: str
    role: str
    creation_time: int
    created_by: str
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > time.time() * 1000)


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}; got {role!r}", field="role")
    return str(role)


def check_project(project: Any) -> str:
    if project == ALL_PROJECTS:
        return ALL_PROJECTS
    if not isinstance(project, str) or not _PROJECT.fullmatch(project):
        raise InvalidInput("project must be '*' or 1-128 letters, digits, '.', '_' or '-' starting with a letter "
                           f"or digit; got {project!r}", field="project")
    return project


class TokenService:
    def __init__(self, engine: Engine, actor: str) -> None:
        self.engine = engine
        self.actor = actor
        self._seen: dict[str, int] = {}

    def create(self, name: str, *, role: str = "viewer", project: str = ALL_PROJECTS,
               expires: Any = None) -> tuple[TokenInfo, str]:
        """A new token and its secret (`ars_…`), which is returned here and never again."""
        name = check_name(name, "name")
        role, project = check_role(role), check_project(project)
        now = int(time.time() * 1000)
        expires_at = None
        if expires is not None:
            lifetime = parse_duration(expires, field="expires")
            if lifetime > MAX_LIFETIME_S:
                raise InvalidInput("expires must be at most 5 years", field="expires")
            expires_at = now + int(lifetime * 1000)
        token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
        row: dict[str, Any] = {"id": token_id, "name": name, "project": project, "role": role, "salt": salt,
                               "digest": _digest(salt, secret), "creation_time": now, "created_by": self.actor,
                               "expires_at": expires_at, "revoked_at": None, "last_used_at": None}
        with self.engine.begin() as conn:
            conn.execute(sa.insert(t.api_tokens).values(**row))
            audit_append(conn, AuditRecord(self.actor, "token.create", "token", token_id,
                                           {"name": name, "role": role, "project": project,
                                            "expires_at": expires_at}), now)
        return TokenInfo.model_validate(row), f"ars_{token_id}_{secret}"

    def list(self, *, include_inactive: bool = False) -> list[TokenInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.api_tokens).order_by(t.api_tokens.c.creation_time)).mappings().all()
        tokens = [TokenInfo(**r) for r in rows]
        return tokens if include_inactive else [x for x in tokens if x.active]

    def get(self, token_id: str) -> TokenInfo:
        if not isinstance(token_id, str):
            raise InvalidInput("token id must be a string", field="id")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.api_tokens).where(t.api_tokens.c.id == token_id)).mappings().first()
        if row is None:
            raise NotFound(f"no token {token_id!r}", field="id")
        return TokenInfo(**row)

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoked at once, for every server sharing the store; revoking twice changes nothing."""
        info = self.get(token_id)
        if info.revoked_at is not None:
            return info
        now = int(time.time() * 1000)
        with self.engine.begin() as conn:
            conn.execute(sa.update(t.api_tokens).where(t.api_tokens.c.id == token_id,
                                                       t.api_tokens.c.revoked_at.is_(None))
                         .values(revoked_at=now))
            audit_append(conn, AuditRecord(self.actor, "token.revoke", "token", token_id, {"name": info.name}), now)
        return self.get(token_id)

    def verify(self, token: Any) -> Principal:
        """The principal a presented token stands for. Every failure says only why it is not accepted,
        never whether the id exists with another secret."""
        match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise Unauthenticated("malformed token: expected 'ars_<id>_<secret>'")
        token_id, secret = match.groups()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.api_tokens).where(t.api_tokens.c.id == token_id)).first()
        if row is None or not hmac.compare_digest(row.digest, _digest(row.salt, secret)):
            raise Unauthenticated("unknown token")
        now = int(time.time() * 1000)
        if row.revoked_at is not None:
            raise Unauthenticated("this token was revoked")
        if row.expires_at is not None and row.expires_at <= now:
            raise Unauthenticated("this token has expired")
        if now - self._seen.get(token_id, 0) > _USED_EVERY_MS:
            self._seen[token_id] = now
            with self.engine.begin() as conn:
                conn.execute(sa.update(t.api_tokens).where(t.api_tokens.c.id == token_id).values(last_used_at=now))
        return Principal(token_id=row.id, name=row.name, role=row.role, project=row.project)


class CachedVerifier:
    """Remembers tokens verified in the last `ttl` seconds, so a server answering thousands of requests a
    second asks the store once per token and per `ttl` (a revocation takes effect within `ttl`). Only a hash
    of each token is kept in memory."""

    def __init__(self, verify: Any, *, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.verify = verify
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen: dict[str, tuple[Principal, float]] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def cached(self, token: str) -> Principal | None:
        hit = self._seen.get(self._key(token))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def check(self, token: str) -> Principal:
        """The principal, from the cache or from `verify` (which raises Unauthenticated)."""
        principal = self.cached(token)
        if principal is None:
            principal = self.verify(token)
            if len(self._seen) >= self.max_entries:
                self._seen.clear()
            self._seen[self._key(token)] = (principal, time.monotonic() + self.ttl)
        return principal


def remote_verify(base_url: str, timeout: float = 10.0) -> Any:
    """A `verify` for a process whose store is an Arsenale server: the server says whom a token stands for."""
    def verify(token: str) -> Principal:
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise Unauthenticated("malformed token: expected 'ars_<id>_<secret>'")
        from arsenale.client.http import HttpTransport
        from arsenale.client.tokens import TokenClient

        with HttpTransport(base_url, timeout=timeout, token=token) as transport:
            return TokenClient(transport).whoami()

    return verify
