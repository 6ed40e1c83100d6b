"""`arsenale index`: add from JSONL, list, versions, show, search, delete, as tables and as JSON, on the local
store and against a live server (`--uri http://…`); errors exit with their code and change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arsenale.llm import vectors
from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.cli.test_cli import cli, home, strict_json  # noqa: F401  (fixture)
from tests.conftest import LiveServer


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


DOCS = [{"id": "refund", "text": "Refunds take five business days.", "metadata": {"topic": "billing"}},
        {"id": "ship", "text": "Shipping is free above fifty euros."},
        {"id": "pwd", "text": "Reset your password from the login page."}]


def _lifecycle(tmp_path: Path, *uri: str) -> None:
    vectors._loaded.clear()
    _jsonl(tmp_path / "docs.jsonl", DOCS)
    assert "kb version 1: 3 rows" in cli(*uri, "index", "add", "kb", "docs.jsonl").stdout
    listed = strict_json(cli(*uri, "index", "list", "--json").stdout)
    assert [(i["name"], i["dim"], i["latest_version"], i["count"]) for i in listed] == [("kb", 256, 1, 3)]
    table = cli(*uri, "index", "list").stdout
    assert "kb" in table and "hashing_embedder(256)" in table
    hits = strict_json(cli(*uri, "index", "search", "kb", "--text", "how long do refunds take", "-k", "2",
                           "--json").stdout)
    assert hits[0]["id"] == "refund" and hits[0]["metadata"] == {"topic": "billing"} and len(hits) == 2
    assert "refund" in cli(*uri, "index", "search", "kb", "--text", "refunds").stdout
    deleted = strict_json(cli(*uri, "index", "delete", "kb", "refund", "--json").stdout)
    assert (deleted["version"], deleted["count"]) == (2, 2)
    versions = strict_json(cli(*uri, "index", "versions", "kb", "--json").stdout)
    assert [(v["version"], v["count"]) for v in versions] == [(1, 3), (2, 2)]
    assert deleted["digest"][:16] in cli(*uri, "index", "versions", "kb").stdout
    shown = strict_json(cli(*uri, "index", "show", "kb", "--version", "1", "--json").stdout)
    assert shown["index"]["metric"] == "cosine" and shown["version"]["count"] == 3
    assert "version 2" in cli(*uri, "index", "show", "kb").stdout
    old = strict_json(cli(*uri, "index", "search", "kb", "--text", "refunds", "--version", "1", "-k", "1",
                          "--json").stdout)
    assert old[0]["id"] == "refund"

    _jsonl(tmp_path / "vec.jsonl", [{"id": "a", "text": "alpha", "vector": [1, 0, 0]},
                                    {"id": "b", "text": "beta", "vector": [0, 1, 0]}])
    assert "vec version 1: 2 rows" in cli(*uri, "index", "add", "vec", "vec.jsonl", "--metric", "dot",
                                          "--embedder", "my-model").stdout
    near = strict_json(cli(*uri, "index", "search", "vec", "--vector", "[0.2, 0.8, 0]", "--json").stdout)
    assert [h["id"] for h in near] == ["b", "a"]
    assert "my-model" in cli(*uri, "index", "search", "vec", "--text", "beta", code=2).stderr


def test_indexes_from_the_shell(home: Path, tmp_path: Path) -> None:  # noqa: F811
    _lifecycle(tmp_path)


def test_indexes_from_the_shell_against_a_server(home: Path, tmp_path: Path) -> None:  # noqa: F811
    local = Client(f"sqlite:///{tmp_path / 'server.db'}", artifacts=str(tmp_path / "server-artifacts"))
    with LiveServer(create_app(local)) as server:
        _lifecycle(tmp_path, "--uri", server.url)
    assert [i.name for i in local.indexes.list()] == ["kb", "vec"]


def test_errors_exit_with_their_code_and_change_nothing(home: Path, tmp_path: Path) -> None:  # noqa: F811
    _jsonl(tmp_path / "docs.jsonl", DOCS)
    cli("index", "add", "kb", "docs.jsonl")
    before = cli("index", "versions", "kb", "--json").stdout
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "text": "ok"}\nnot json\n')
    assert "bad.jsonl:2 is not JSON" in cli("index", "add", "kb", "bad.jsonl", code=2).stderr
    _jsonl(tmp_path / "half.jsonl", [{"id": "x", "text": "a", "vector": [1.0] * 256}, {"id": "y", "text": "b"}])
    assert "1 of 2 lines have a vector" in cli("index", "add", "kb", "half.jsonl", code=2).stderr
    _jsonl(tmp_path / "extra.jsonl", [{"id": "x", "txt": "a"}])
    assert "unknown fields: txt" in cli("index", "add", "kb", "extra.jsonl", code=2).stderr
    _jsonl(tmp_path / "dims.jsonl", [{"id": "x", "text": "a", "vector": [1.0, 2.0]}])
    assert "dimension" in cli("index", "add", "kb", "dims.jsonl", code=2).stderr
    (tmp_path / "empty.jsonl").write_text("\n")
    assert "no documents" in cli("index", "add", "kb", "empty.jsonl", code=2).stderr
    assert "cannot read" in cli("index", "add", "kb", "missing.jsonl", code=2).stderr
    assert "between 1 and 1000" in cli("index", "search", "kb", "--text", "x", "-k", "0", code=2).stderr
    assert "exactly one" in cli("index", "search", "kb", code=2).stderr
    assert "JSON list" in cli("index", "search", "kb", "--vector", "{}", code=2).stderr
    assert "dimension" in cli("index", "search", "kb", "--vector", "[1, 2]", code=2).stderr
    assert "no version 9" in cli("index", "show", "kb", "--version", "9", code=3).stderr
    assert "version must be" in cli("index", "show", "kb", "--version", "abc", code=2).stderr
    assert "no vector index 'nope'" in cli("index", "versions", "nope", code=3).stderr
    assert "missing" in cli("index", "delete", "kb", "missing", code=2).stderr
    assert cli("index", "versions", "kb", "--json").stdout == before
    assert "no vector indexes yet" not in cli("index", "list").stdout


def test_recall_and_drift_from_the_shell(home: Path, tmp_path: Path) -> None:  # noqa: F811
    """`index recall` scores a version on a registered evaluation set; `index drift` compares two versions.
    Both need the store itself, and say so to a server URI."""
    import pandas as pd

    vectors._loaded.clear()
    _jsonl(tmp_path / "docs.jsonl", DOCS)
    cli("index", "add", "kb", "docs.jsonl")
    Client().datasets.register("kb-eval", pd.DataFrame({
        "question": ["how long do refunds take", "is shipping free", "reset my password"],
        "relevant_ids": ['["refund"]', "ship", '["pwd"]']}))
    got = strict_json(cli("index", "recall", "kb", "kb-eval", "-k", "1", "--json").stdout)
    assert got["version"] == 1 and got["questions"] == 3 and got["dataset"] == "kb-eval@1"
    assert got["metrics"]["recall_at_1"] == 1.0 and got["run_id"] is None
    logged = strict_json(cli("index", "recall", "kb", "kb-eval", "--log", "--json").stdout)
    assert Client().tracking.get_run(logged["run_id"]).data.metrics["recall_at_10"] == 1.0
    assert "recall_at_10" in cli("index", "recall", "kb", "kb-eval").stdout

    _jsonl(tmp_path / "more.jsonl", [{"id": "new", "text": "Gift cards never expire."}])
    cli("index", "add", "kb", "more.jsonl")
    report = strict_json(cli("index", "drift", "kb", "--from", "1", "--to", "2", "--json").stdout)
    assert (report["added"], report["removed"], report["changed"]) == (1, 0, 0)
    assert "v1 → v2" in cli("index", "drift", "kb", "--from", "1", "--to", "2").stdout
    assert cli("index", "drift", "kb", "--from", "1", "--to", "9", code=3).stderr
    assert "k must be an integer between" in cli("index", "recall", "kb", "kb-eval", "-k", "0", code=2).stderr
    assert "hashing or local" in cli("index", "recall", "kb", "kb-eval", "--embedder", "x", code=2).stderr
    with LiveServer(create_app(Client())) as server:
        assert "next to the store" in cli("--uri", server.url, "index", "drift", "kb", "--from", "1", "--to",
                                          "2", code=2).stderr
