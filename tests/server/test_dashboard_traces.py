"""The trace pages (`/traces`, `/traces/{id}`) through FastAPI's TestClient: filters, cost and latency, the span
tree with its timeline bars, attributes, events and scores, every piece of user text escaped."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from arsenale.platform import Client
from arsenale.server.dashboard import install

EVIL = "<script>alert(1)</script>"


def _site(tmp_path: Path) -> tuple[TestClient, Client]:
    client = Client(f"sqlite:///{tmp_path / 'dash.db'}", artifacts=str(tmp_path / "artifacts"))
    app = FastAPI()
    app.state.client = client
    install(app)
    return TestClient(app), client


def _trace(client: Client, session: str, tokens: int, name: str = "answer") -> tuple[str, str, str]:
    t, root, gen = os.urandom(16).hex(), os.urandom(8).hex(), os.urandom(8).hex()
    now = time.time_ns() - 10**9
    client.traces.ingest([
        {"trace_id": t, "span_id": root, "name": name, "start_ns": now, "end_ns": now + 100_000_000,
         "attributes": {"session.id": session, "question": EVIL}},
        {"trace_id": t, "span_id": gen, "parent_span_id": root, "name": "generation", "kind": "llm",
         "start_ns": now + 50_000_000, "end_ns": now + 100_000_000, "status": "ERROR", "status_message": EVIL,
         "attributes": {"gen_ai.request.model": "dash-model", "gen_ai.usage.input_tokens": tokens},
         "events": [{"name": "retry", "time_ns": now + 60_000_000, "attributes": {"why": EVIL}}]},
    ])
    return t, root, gen


def test_list_filters_and_shows_cost_and_latency(tmp_path: Path) -> None:
    http, client = _site(tmp_path)
    client.traces.set_price("dash-model", 1_000_000, 0)
    cheap, _, _ = _trace(client, "s-1", 2)
    dear, _, _ = _trace(client, EVIL, 9, name=EVIL)
    r = http.get("/traces")
    assert r.status_code == 200
    assert EVIL not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    rows = re.findall(r'<tr data-trace="([0-9a-f]{32})">', r.text)
    assert set(rows) == {cheap, dear}
    assert "$9" in r.text and "100.0 ms" in r.text
    assert 'id="traces-timeline"' in r.text and re.search(r'<tr class="bucket">.*?<td class="num">2</td>', r.text,
                                                          re.DOTALL)
    # Sessions of the last day, each linking to its traces; a hostile session name is shown as text.
    sessions = re.findall(r'<tr class="session"><td><a href="/traces\?session=([^"]+)">', r.text)
    assert sorted(sessions) == sorted(["s-1", "%3Cscript%3Ealert%281%29%3C%2Fscript%3E"])
    assert re.search(r'<tr class="session">.*?>s-1</a></td>\s*<td class="num">1</td>', r.text, re.DOTALL)
    r = http.get("/traces", params={"min_cost": "5"})
    assert re.findall(r'<tr data-trace="([0-9a-f]{32})">', r.text) == [dear]
    r = http.get("/traces", params={"session": "s-1"})
    assert re.findall(r'<tr data-trace="([0-9a-f]{32})">', r.text) == [cheap]
    r = http.get("/traces", params={"min_cost": "lots"})
    assert r.status_code == 400 and "min_cost must be a number" in r.text


def test_trace_page_has_tree_timeline_attributes_events_and_scores(tmp_path: Path) -> None:
    http, client = _site(tmp_path)
    t, root, gen = _trace(client, "s-2", 3)
    client.traces.score(t, "thumbs", -1, comment=EVIL)
    r = http.get(f"/traces/{t}")
    assert r.status_code == 200, r.text
    assert EVIL not in r.text
    assert re.findall(r'<tr data-span="([0-9a-f]{16})" data-depth="(\d)">', r.text) == [(root, "0"), (gen, "1")]
    bars = re.findall(r'class="span-bar" style="[^"]*left:([\d.]+)%;width:([\d.]+)%', r.text)
    assert [(float(a), float(b)) for a, b in bars] == [(0.0, 100.0), (50.0, 50.0)]
    assert "gen_ai.usage.input_tokens" in r.text and "retry" in r.text and "+10.0 ms" in r.text
    assert 'id="scores"' in r.text and "thumbs" in r.text and "&lt;script&gt;" in r.text
    assert http.get(f"/traces/{'0' * 31}1").status_code == 404
    assert http.get("/traces/not-an-id").status_code == 404
