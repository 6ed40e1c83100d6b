"""Fixtures shared by the vector index tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import arsenale as ars
from arsenale.llm import vectors
from arsenale.platform import Client


@pytest.fixture
def store(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Client:
    """The SDK's client on a fresh store (SQLite and PostgreSQL); each test starts cold: no version loaded
    and no graph built by an earlier one."""
    monkeypatch.setenv("ARSENALE_URI", store_uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "artifacts"))
    vectors._loaded.clear()
    vectors._graphs.clear()
    return ars.get_client()
