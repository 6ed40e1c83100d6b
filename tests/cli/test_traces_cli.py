"""`arsenale traces list|show|score|price|prices` against the embedded store."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from arsenale.cli.main import app
from arsenale.platform import Client

runner = CliRunner()


def _record(session: str, tokens: int, *, orphan: bool = False, error: bool = False) -> str:
    t, root, gen = os.urandom(16).hex(), os.urandom(8).hex(), os.urandom(8).hex()
    spans = [
        {"trace_id": t, "span_id": root, "name": "answer", "start_ns": 1_000_000, "end_ns": 51_000_000,
         "attributes": {"session.id": session, "user.id": "ada"}},
        {"trace_id": t, "span_id": gen, "parent_span_id": root, "name": "generation", "kind": "llm",
         "start_ns": 2_000_000, "end_ns": 42_000_000, "status": "ERROR" if error else "OK",
         "status_message": "rate limited" if error else None,
         "attributes": {"gen_ai.request.model": "cli-model", "gen_ai.usage.input_tokens": tokens,
                        "gen_ai.usage.output_tokens": 10}},
    ]
    if orphan:
        spans.append({"trace_id": t, "span_id": os.urandom(8).hex(), "parent_span_id": os.urandom(8).hex(),
                      "name": "stray", "start_ns": 3_000_000, "end_ns": 4_000_000})
    assert Client().traces.ingest(spans).rejected == 0
    return t


def test_price_list_show_and_score(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "240")  # one line per span whatever terminal runs the suite
    out = runner.invoke(app, ["traces", "price", "cli-model", "--input", "1000", "--output", "2000"])
    assert out.exit_code == 0, out.output
    assert "cli-model: 1000 in / 2000 out per million tokens" in out.output
    prices = json.loads(runner.invoke(app, ["traces", "prices", "--json"]).stdout)
    assert [(p["model"], p["input_per_million"]) for p in prices] == [("cli-model", 1000.0)]

    cheap = _record("s-cheap", 100)
    dear = _record("s-dear", 5000, orphan=True, error=True)

    listed = json.loads(runner.invoke(app, ["traces", "list", "--json"]).stdout)
    assert [t["trace_id"] for t in listed["traces"]] in ([dear, cheap], [cheap, dear])
    dear_only = json.loads(runner.invoke(app, ["traces", "list", "--min-cost", "1", "--json"]).stdout)
    assert [t["trace_id"] for t in dear_only["traces"]] == [dear]
    assert dear_only["traces"][0]["cost"] == (5000 * 1000 + 10 * 2000) / 1e6
    by_session = runner.invoke(app, ["traces", "list", "--session", "s-cheap"])
    assert by_session.exit_code == 0 and cheap in by_session.output and dear not in by_session.output
    by_attr = json.loads(runner.invoke(app, ["traces", "list", "--attribute", "gen_ai.usage.input_tokens=100",
                                             "--json"]).stdout)
    assert [t["trace_id"] for t in by_attr["traces"]] == [cheap]

    shown = runner.invoke(app, ["traces", "show", dear])
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "answer" in text and "└ generation" in text and "stray (orphan: unknown parent)" in text
    assert "40.0 ms" in text and "5000 → 10" in text and "ERROR: rate limited" in text

    scored = runner.invoke(app, ["traces", "score", cheap, "thumbs", "1", "--comment", "spot on"])
    assert scored.exit_code == 0, scored.output
    shown = runner.invoke(app, ["traces", "show", cheap])
    assert "thumbs" in shown.output and "spot on" in shown.output
    top = json.loads(runner.invoke(app, ["traces", "list", "--score", "thumbs", "--json"]).stdout)
    assert [t["trace_id"] for t in top["traces"]] == [cheap]


def test_bad_input_exits_non_zero_and_stores_nothing() -> None:
    for args, code in ((["show", "nothex"], 2), (["show", "0" * 31 + "1"], 3),
                       (["price", "m", "--input", "-1", "--output", "1"], 2),
                       (["list", "--attribute", "novalue"], 2), (["score", "a" * 32, "thumbs", "1"], 3)):
        out = runner.invoke(app, ["traces", *args])
        assert out.exit_code == code, (args, out.output)
    assert Client().traces.prices() == []
    assert Client().traces.search().traces == []
    empty = runner.invoke(app, ["traces", "list"])
    assert empty.exit_code == 0 and "no traces match" in empty.output
