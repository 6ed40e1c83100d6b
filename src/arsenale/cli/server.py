"""`arsenale server` and `arsenale ui`: run the HTTP API and dashboard."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from typing import Annotated, Any

import typer

from arsenale.cli import render
from arsenale.config import get_settings
from arsenale.errors import ArsenaleError, InvalidInput

Host = Annotated[str, typer.Option("--host", help="Interface to listen on (0.0.0.0 for every interface).")]
Port = Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")]

READY_TIMEOUT_S = 30.0


def _serve_function() -> Callable[..., Any]:
    try:
        from arsenale.server.app import serve
    except ImportError as exc:
        raise ArsenaleError(f"cannot start the server: {exc}") from None
    return serve


Auth = Annotated[bool | None, typer.Option("--auth/--no-auth", help="Require an API token or a dashboard login "
                                            "(default: ARSENALE_AUTH).")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback address without auth.")]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def check_exposure(host: str, auth: bool | None, insecure: bool) -> bool:
    """The auth setting to run with; refuses to expose a server without auth unless told to."""
    enabled = get_settings().auth if auth is None else auth
    if not enabled and not insecure and not is_loopback(host):
        raise InvalidInput(f"refusing to listen on {host} without auth: anyone who can reach it could change "
                           "models and deployments. Use --auth (create a token with `arsenale tokens create "
                           "NAME --role admin`), or --insecure on a network you trust.", field="host")
    return enabled


def server(host: Host = "127.0.0.1", port: Port = 5000, auth: Auth = None, insecure: Insecure = False) -> None:
    """Run the REST API and dashboard (the same stateless server scales out behind a load balancer)."""
    enabled = check_exposure(host, auth, insecure)
    _serve_function()(host, port, auth=enabled)


def local_host(host: str) -> str:
    """Where a browser on this machine reaches a server listening on `host`."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}.get(host, host)


def dashboard_url(host: str, port: int) -> str:
    local = local_host(host)
    return f"http://[{local}]:{port}/" if ":" in local else f"http://{local}:{port}/"


def has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def wait_until_listening(host: str, port: int, timeout: float = READY_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _open_when_ready(url: str, host: str, port: int) -> None:
    if wait_until_listening(local_host(host), port):
        webbrowser.open(url)


def ui(host: Host = "127.0.0.1", port: Port = 5000, auth: Auth = None, insecure: Insecure = False) -> None:
    """Run the server and open the dashboard in a browser (or print its URL when there is no display)."""
    enabled = check_exposure(host, auth, insecure)
    serve = _serve_function()
    url = dashboard_url(host, port)
    render.print_message(f"dashboard: {url}", "bold")
    if has_display():
        threading.Thread(target=_open_when_ready, args=(url, host, port), daemon=True,
                         name="arsenale-open-browser").start()
    serve(host, port, auth=enabled)
