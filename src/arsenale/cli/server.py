"""`arsenale server` and `arsenale ui`: run the HTTP API and dashboard."""

from __future__ import annotations

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
from arsenale.errors import ArsenaleError

Host = Annotated[str, typer.Option("--host", help="Interface to listen on (0.0.0.0 for every interface).")]
Port = Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")]

READY_TIMEOUT_S = 30.0


def _serve_function() -> Callable[..., Any]:
    try:
        from arsenale.server.app import serve
    except ImportError as exc:
        raise ArsenaleError(f"cannot start the server: {exc}") from None
    return serve


def server(host: Host = "127.0.0.1", port: Port = 5000) -> None:
    """Run the REST API and dashboard (the same stateless server scales out behind a load balancer)."""
    _serve_function()(host, port)


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


def ui(host: Host = "127.0.0.1", port: Port = 5000) -> None:
    """Run the server and open the dashboard in a browser (or print its URL when there is no display)."""
    serve = _serve_function()
    url = dashboard_url(host, port)
    render.print_message(f"dashboard: {url}", "bold")
    if has_display():
        threading.Thread(target=_open_when_ready, args=(url, host, port), daemon=True,
                         name="arsenale-open-browser").start()
    serve(host, port)
