"""`SecretClient`: named secrets set, listed and deleted through a server (an admin token when auth is on),
the same methods as `SecretService` except `resolve`: no route ever returns a value."""

from __future__ import annotations

import builtins
from urllib.parse import quote

from arsenale.client.http import HttpTransport
from arsenale.errors import Forbidden
from arsenale.security.secrets import RotationReport, SecretInfo
from arsenale.security.tokens import ALL_PROJECTS

__all__ = ["SecretClient"]

_PATH = "/api/v1/secrets"


def _one(name: str) -> str:
    return f"{_PATH}/{quote(str(name), safe='')}"


class SecretClient:
    """What `Client("http://…").secrets` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"SecretClient({self.transport.base_url!r})"

    def set(self, name: str, value: str, *, project: str = ALL_PROJECTS) -> SecretInfo:
        body = self.transport.request("PUT", _one(name), json={"value": value, "project": project}).json()
        return SecretInfo(**body)

    def list(self, *, project: str | None = None) -> builtins.list[SecretInfo]:
        rows = self.transport.request("GET", _PATH, params={"project": project}).json()
        return [SecretInfo(**r) for r in rows]

    def get(self, name: str, *, project: str = ALL_PROJECTS) -> SecretInfo:
        return SecretInfo(**self.transport.request("GET", _one(name), params={"project": project}).json())

    def delete(self, name: str, *, project: str = ALL_PROJECTS) -> None:
        self.transport.request("DELETE", _one(name), params={"project": project})

    def rotate(self) -> RotationReport:
        return RotationReport(**self.transport.request("POST", f"{_PATH}/rotate").json())

    def resolve(self, name: str, *, project: str | None = None) -> str:
        raise Forbidden(f"secret {name!r} can only be resolved next to the store, by the server that uses it: "
                        "no API returns a secret's value")
