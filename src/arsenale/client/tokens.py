"""`TokenClient`: API tokens managed through a server with auth on (an admin token), the same methods as
`TokenService`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from arsenale.client.http import HttpTransport
from arsenale.security.tokens import ALL_PROJECTS, Principal, TokenInfo

__all__ = ["TokenClient"]

_PATH = "/api/v1/tokens"


class TokenClient:
    """What `Client("http://…").tokens` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"TokenClient({self.transport.base_url!r})"

    def create(self, name: str, *, role: str = "viewer", project: str = ALL_PROJECTS,
               expires: Any = None) -> tuple[TokenInfo, str]:
        body = self.transport.request("POST", _PATH, json={"name": name, "role": role, "project": project,
                                                           "expires": expires}).json()
        secret = body.pop("token")
        return TokenInfo(**body), secret

    def list(self, *, include_inactive: bool = False) -> list[TokenInfo]:
        rows = self.transport.request("GET", _PATH, params={"all": str(include_inactive).lower()}).json()
        return [TokenInfo(**r) for r in rows]

    def revoke(self, token_id: str) -> TokenInfo:
        return TokenInfo(**self.transport.request("DELETE", f"{_PATH}/{quote(str(token_id), safe='')}").json())

    def whoami(self) -> Principal:
        """Who this client's token acts as."""
        body = self.transport.request("GET", "/api/v1/auth/whoami").json()
        return Principal(token_id=body["token_id"], name=body["name"], role=body["role"], project=body["project"])
