"""Six processes registering versions of one model at once, with fork and spawn, on SQLite and
PostgreSQL: every registration gets its own number, and the numbers are exactly 1..N."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arsenale.platform import Client
from arsenale.registry.models import ModelFile
from tests.conftest import race

PROCS = 6
PER_PROC = 4
NAME = "churn"


def _register(uri: str, artifacts: str, worker: int, start: Any, out: Any) -> None:
    registry = Client(uri, artifacts=artifacts, actor=f"worker-{worker}").registry
    start.wait(30)
    for i in range(PER_PROC):
        folder = Path(artifacts).parent / f"w{worker}-{i}"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(f"worker {worker} model {i}".encode())
        digest, size = registry.upload_file(folder / "weights.bin")
        mv = registry.create_version(NAME, files=[ModelFile(path="weights.bin", digest=digest, size=size)],
                                     flavor="pyfunc", flavor_meta={}, tags={"worker": worker, "i": i})
        out.put((mv.version, worker, i))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_concurrent_registrations_get_consecutive_numbers(store_uri: str, tmp_path: Path,
                                                          method: str) -> None:
    artifacts = str(tmp_path / "artifacts")
    client = Client(store_uri, artifacts=artifacts)
    results = race(method, PROCS, PER_PROC, _register, store_uri, artifacts)
    n = PROCS * PER_PROC
    assert sorted(v for v, _, _ in results) == list(range(1, n + 1))
    versions = client.registry.list_versions(NAME)
    assert [v.version for v in versions] == list(range(n, 0, -1))
    # Each number belongs to the registration that was told it: no row was swapped or overwritten.
    by_version = {v.version: (int(v.tags["worker"]), int(v.tags["i"])) for v in versions}
    assert by_version == {v: (w, i) for v, w, i in results}
    assert client.registry.get_model(NAME).latest_version == n
    registered = client.audit.entries(action="model.register", limit=None)
    assert sorted(e.entity_id for e in registered) == sorted(f"{NAME}/{v}" for v in range(1, n + 1))
    assert client.audit.verify().ok
