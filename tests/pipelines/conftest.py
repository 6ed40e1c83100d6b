"""Fixtures for the pipeline tests: a fresh store per test, a marks file to see what ran, a session Ray."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from arsenale.platform import Client
from arsenale.store.db import dispose_all
from tests.conftest import unavailable


@pytest.fixture
def pclient(tmp_path: Path) -> Iterator[Client]:
    """A platform client on a fresh SQLite store and artifact folder."""
    yield Client(f"sqlite:///{tmp_path / 'arsenale.db'}", artifacts=str(tmp_path / "artifacts"))
    dispose_all()


@pytest.fixture
def marks_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Steps of example_pipelines append what they ran here (workers inherit the variable)."""
    path = tmp_path / "marks.jsonl"
    monkeypatch.setenv("ARS_TEST_MARKS", str(path))
    return path


@pytest.fixture(scope="session")
def ray_session() -> Iterator[object]:
    """A local Ray for the session: ray.init(num_cpus=2, include_dashboard=False), shut down at the end."""
    try:
        import ray
    except ImportError:
        unavailable("Ray is not installed (pip install 'arsenale[ray]')")
    src = str(Path(__file__).resolve().parents[2] / "src")
    root = str(Path(__file__).resolve().parents[2])
    # Ray workers import the steps by module name: give them the same import path as this process.
    path = os.pathsep.join(dict.fromkeys([root, src, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]))
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"PYTHONPATH": path.strip(os.pathsep)}})
    except Exception as exc:  # noqa: BLE001 - any failure to start means "no Ray here"
        unavailable(f"Ray cannot start here: {type(exc).__name__}: {exc}")
    yield ray
    ray.shutdown()
