"""`arsenale server` and `arsenale ui`: run the HTTP API and dashboard."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import webbrowser
from typing import Annotated, Any
from collections.abc import Callable

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
    return serve  # type: ignore[no-any-return]


def server(host: Host = "127.0.0.1", port: Port = 5000) -> None:
    """Run the REST API and dashboard (the same stateless server scales out behind a load balancer)."""
    _serve_function()(host, port)


def dashboard_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


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
    connect_host = url.split("//", 1)[1].rsplit(":", 1)[0].strip("[]")
    if wait_until_listening(connect_host, port):
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
