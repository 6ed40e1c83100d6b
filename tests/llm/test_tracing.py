"""LLM traces: the service and the SDK, on SQLite, PostgreSQL and over HTTP (the `client` fixture)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

import arsenale as ars
from arsenale.errors import InvalidInput, NotFound
from arsenale.llm import tracer
from arsenale.llm.tracing import MAX_ATTRIBUTES, MAX_VALUE_CHARS, Trace, span_tree


def _id(n: int) -> str:
    return os.urandom(n).hex()


def _span(trace_id: str, span_id: str, parent: str | None = None, name: str = "s", start: int = 1_000,
          end: int | None = 2_000, **extra: Any) -> dict[str, Any]:
    return {"trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": name,
            "start_ns": start, "end_ns": end, **extra}


def _names(trace: Trace) -> list[tuple[int, str]]:
    return [(depth, s.name) for depth, s in span_tree(trace)]


def test_out_of_order_spans_build_one_tree(client: Any) -> None:
    t, root, child, grandchild = _id(16), _id(8), _id(8), _id(8)
    # The grandchild first, then the child, then the root: each batch is stored as it comes.
    assert client.traces.ingest([_span(t, grandchild, child, "tool", 1_300, 1_400)]).accepted == 1
    partial = client.traces.get(t)
    assert partial.spans[0].orphan and partial.span_count == 1
    client.traces.ingest([_span(t, child, root, "generation", 1_200, 1_500)])
    client.traces.ingest([_span(t, root, None, "answer", 1_000, 2_000, attributes={"session.id": "s-1"})])
    got = client.traces.get(t)
    assert _names(got) == [(0, "answer"), (1, "generation"), (2, "tool")]
    assert not any(s.orphan for s in got.spans)
    assert (got.name, got.session, got.span_count, got.start_ns, got.end_ns) == ("answer", "s-1", 3, 1_000, 2_000)
    assert got.duration_ms == pytest.approx(0.001)


def test_unknown_parent_is_kept_as_an_orphan(client: Any) -> None:
    t, root, lost = _id(16), _id(8), _id(8)
    client.traces.ingest([_span(t, root, None, "root"), _span(t, lost, _id(8), "lost")])
    got = client.traces.get(t)
    assert {s.name: s.orphan for s in got.spans} == {"root": False, "lost": True}
    assert _names(got) == [(0, "root"), (0, "lost")]


def test_duplicate_span_ids_replace_and_never_double(client: Any) -> None:
    t, root = _id(16), _id(8)
    first = _span(t, root, None, "v1", attributes={"gen_ai.usage.input_tokens": 10})
    client.traces.ingest([first])
    client.traces.ingest([first])  # an exporter's retry
    client.traces.ingest([{**first, "name": "v2", "attributes": {"gen_ai.usage.input_tokens": 7}}] * 2)
    got = client.traces.get(t)
    assert [s.name for s in got.spans] == ["v2"]
    assert (got.span_count, got.input_tokens) == (1, 7)


def test_huge_and_too_many_attributes_are_truncated_not_rejected(client: Any) -> None:
    t, s = _id(16), _id(8)
    attributes: dict[str, Any] = {"prompt": "x" * (MAX_VALUE_CHARS + 5000), "nested": {"a": ["b" * 40_000]}}
    attributes.update({f"k{i}": i for i in range(MAX_ATTRIBUTES + 10)})
    result = client.traces.ingest([_span(t, s, None, "big", attributes=attributes,
                                         events=[{"name": "e", "time_ns": 1_500, "attributes": {"v": "y" * 20_000}}])])
    assert (result.accepted, result.rejected) == (1, 0)
    got = client.traces.get(t).spans[0]
    assert got.attributes["prompt"] == "x" * MAX_VALUE_CHARS + "…[truncated 5000 chars]"
    assert got.attributes["nested"].startswith('{"a": ["bbb') and got.attributes["nested"].endswith("chars]")
    assert got.attributes["arsenale.dropped_attributes"] == 12
    assert len(got.attributes) == MAX_ATTRIBUTES + 1
    assert got.events[0].attributes["v"].endswith("…[truncated 3616 chars]")


def test_bad_spans_are_rejected_with_reasons_and_the_rest_stored(client: Any) -> None:
    t = _id(16)
    good = _span(t, _id(8), None, "ok")
    result = client.traces.ingest([good, _span("nothex", _id(8)), _span(t, "short"), {**good, "span_id": _id(8),
                                                                                   "name": ""},
                                   _span(t, _id(8), start=5, end=1)])
    assert (result.accepted, result.rejected) == (1, 4)
    assert "spans[1].trace_id must be 32 hex digits" in result.errors[0]
    assert "spans[2].span_id" in result.errors[1]
    assert "spans[3].name" in result.errors[2]
    assert "spans[4].end_ns is before start_ns" in result.errors[3]
    assert [s.name for s in client.traces.get(t).spans] == ["ok"]
    with pytest.raises(InvalidInput, match="spans must be a list"):
        client.traces.ingest({"spans": []})


def test_cost_from_the_editable_price_table(client: Any) -> None:
    price = client.traces.set_price("gpt-test", 2.5, 10.0)
    assert (price.model, price.input_per_million, price.output_per_million) == ("gpt-test", 2.5, 10.0)
    client.traces.set_price("openai/gpt-x", 1, 1)
    assert [p.model for p in client.traces.prices()] == ["gpt-test", "openai/gpt-x"]
    t, root, gen, explicit = _id(16), _id(8), _id(8), _id(8)
    client.traces.ingest([
        _span(t, root, None, "answer"),
        _span(t, gen, root, "llm", attributes={"gen_ai.request.model": "gpt-test",
                                               "gen_ai.usage.input_tokens": 1000,
                                               "gen_ai.usage.output_tokens": 100}),
        _span(t, explicit, root, "other", model="unknown-model", input_tokens=5, output_tokens=5, cost=0.5),
    ])
    got = client.traces.get(t)
    by_name = {s.name: s for s in got.spans}
    assert by_name["llm"].model == "gpt-test"
    assert by_name["llm"].cost == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    assert by_name["answer"].cost is None
    assert got.cost == pytest.approx(0.0035 + 0.5)
    assert (got.input_tokens, got.output_tokens) == (1005, 105)
    client.traces.set_price("gpt-test", 5, 20)  # edited: new spans pay the new price
    assert client.traces.prices()[0].input_per_million == 5
    with pytest.raises(InvalidInput, match="input_per_million"):
        client.traces.set_price("m", -1, 1)


def test_search_by_session_cost_attribute_score_and_pages(client: Any) -> None:
    client.traces.set_price("m", 1_000_000, 0)  # a dollar per input token: costs are token counts
    ids = []
    for i in range(5):
        t, root = _id(16), _id(8)
        ids.append(t)
        client.traces.ingest([
            _span(t, root, None, f"q{i}", start=10_000 + i, end=20_000,
                  attributes={"session.id": "even" if i % 2 == 0 else "odd", "user.id": f"u{i}",
                              "arsenale.prompt": "prompts:/qa@prod" if i < 2 else None}),
            _span(t, _id(8), root, "llm", start=10_100 + i, end=19_000, attributes={"gen_ai.request.model": "m",
                                                                         "gen_ai.usage.input_tokens": i,
                                                                         "retriever.k": 4 if i == 3 else 8,
                                                                         "tier": "gold" if i == 1 else "free"}),
        ])
    s = client.traces
    assert [t.name for t in s.search().traces] == ["q4", "q3", "q2", "q1", "q0"]
    assert [t.name for t in s.search(session="even").traces] == ["q4", "q2", "q0"]
    assert [t.name for t in s.search(user="u3").traces] == ["q3"]
    assert [t.name for t in s.search(min_cost=2, max_cost=3).traces] == ["q3", "q2"]
    assert [t.name for t in s.search(attributes={"tier": "gold"}).traces] == ["q1"]
    assert [t.name for t in s.search(attributes={"retriever.k": 4}).traces] == ["q3"]
    assert [t.name for t in s.search(attributes={"retriever.k": "4"}).traces] == ["q3"]
    assert [t.name for t in s.search(prompt="prompts:/qa@prod").traces] == ["q1", "q0"]
    assert s.search(attributes={"tier": "g%"}).traces == []  # LIKE wildcards are plain text
    s.score(ids[2], "groundedness", 0.9, source="auto")
    s.score(ids[4], "groundedness", 0.2, source="auto")
    s.score(ids[4], "thumbs", 1, comment="helpful")
    assert [t.name for t in s.search(score="groundedness").traces] == ["q4", "q2"]
    assert [t.name for t in s.search(score="groundedness", min_score=0.5).traces] == ["q2"]
    top = s.search(score="thumbs").traces[0]
    assert [(x.name, x.value, x.comment, x.source) for x in top.scores] == [
        ("groundedness", 0.2, None, "auto"), ("thumbs", 1.0, "helpful", "human")]
    first = s.search(limit=2)
    assert [t.name for t in first.traces] == ["q4", "q3"] and first.next_page_token
    second = s.search(limit=2, page_token=first.next_page_token)
    third = s.search(limit=2, page_token=second.next_page_token)
    assert [t.name for t in second.traces + third.traces] == ["q2", "q1", "q0"]
    assert third.next_page_token is None
    with pytest.raises(InvalidInput, match="page_token"):
        s.search(page_token="bogus")


def test_scores_need_a_known_trace_and_a_valid_value(client: Any) -> None:
    with pytest.raises(NotFound):
        client.traces.score(_id(16), "thumbs", 1)
    with pytest.raises(NotFound):
        client.traces.get(_id(16))
    t = _id(16)
    client.traces.ingest([_span(t, _id(8), None, "r")])
    with pytest.raises(InvalidInput, match="value must be a finite number"):
        client.traces.score(t, "x", float("nan"))
    with pytest.raises(InvalidInput, match="source"):
        client.traces.score(t, "x", 1, source="robot")
    with pytest.raises(InvalidInput, match="trace_id"):
        client.traces.get("../etc")
    assert client.traces.get(t).scores == []


def test_sdk_records_nested_spans_usage_and_scores(client: Any) -> None:
    client.traces.set_price("gpt-sdk", 1.0, 2.0)

    with ars.trace("answer", session="user-42", user="u-42", attributes={"question": "why?"},
                   client=client) as t:
        with ars.span("retrieval", kind="retriever") as r:
            r.set_attribute("k", 4)
            r.add_event("hits", {"n": 4})
        with t.span("generation", kind="llm") as g:
            g.set_usage(model="gpt-sdk", input_tokens=1000, output_tokens=500)
            with ars.span("tool"):
                pass
        t.score("groundedness", 0.75)
    tracer.flush(client)
    got = client.traces.get(t.trace_id)
    assert _names(got) == [(0, "answer"), (1, "retrieval"), (1, "generation"), (2, "tool")]
    assert (got.session, got.user_id, got.status, got.attributes["question"]) == ("user-42", "u-42", "OK", "why?")
    gen = next(s for s in got.spans if s.name == "generation")
    assert (gen.kind, gen.model, gen.input_tokens, gen.output_tokens) == ("llm", "gpt-sdk", 1000, 500)
    assert gen.cost == pytest.approx(0.002) and got.cost == pytest.approx(0.002)
    retrieval = next(s for s in got.spans if s.name == "retrieval")
    assert retrieval.events[0].name == "hits" and retrieval.events[0].attributes == {"n": 4}
    assert all(s.end_ns is not None and s.end_ns >= s.start_ns for s in got.spans)
    assert [(x.name, x.value, x.source) for x in got.scores] == [("groundedness", 0.75, "auto")]


def test_sdk_exception_marks_the_span_error_and_propagates(client: Any) -> None:
    with pytest.raises(ZeroDivisionError), ars.trace("failing", client=client) as t, ars.span("inner"):
        1 / 0  # noqa: B018
    tracer.flush(client)
    got = client.traces.get(t.trace_id)
    assert got.status == "ERROR"
    inner = next(s for s in got.spans if s.name == "inner")
    assert inner.status == "ERROR" and inner.status_message == "ZeroDivisionError: division by zero"
    assert inner.events[-1].name == "exception"
    assert inner.events[-1].attributes["exception.type"] == "ZeroDivisionError"


def test_sdk_decorator_and_threads_get_their_own_spans(client: Any) -> None:
    @ars.trace("job", client=client)
    def job(n: int) -> int:
        with ars.span("step") as s:
            s.set_attribute("n", n)
        return n

    threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    tracer.flush(client)
    page = client.traces.search(name="job")
    assert len(page.traces) == 4
    for summary in page.traces:
        assert _names(client.traces.get(summary.trace_id)) == [(0, "job"), (1, "step")]


def test_sdk_overhead_is_microseconds(tmp_path: Any) -> None:
    from arsenale.platform import Client

    client = Client(f"sqlite:///{tmp_path / 'fast.db'}")
    n = 5000
    t0 = time.perf_counter()
    with ars.trace("bulk", client=client) as t:
        for i in range(n - 1):
            with ars.span("s") as s:
                s.set_attribute("i", i)
    per_span = (time.perf_counter() - t0) / n
    tracer.flush(client)
    assert client.traces.get(t.trace_id).span_count == n
    assert per_span < 200e-6, f"{per_span * 1e6:.1f} µs per span"


def test_timeline_buckets_cost_and_latency(client: Any) -> None:
    now = time.time_ns()
    client.traces.ingest([_span(_id(16), _id(8), None, "a", start=now - 10**9, end=now, cost=0.25),
                          _span(_id(16), _id(8), None, "b", start=now - 10**9, end=now - 5 * 10**8, cost=0.5)])
    rows = client.traces.timeline(since="1h", bucket="1d")
    assert len(rows) == 1
    assert rows[0]["traces"] == 2 and rows[0]["cost"] == pytest.approx(0.75)
    assert rows[0]["p50_ms"] == pytest.approx(750)


def test_sessions_summarise_their_traces(client: Any) -> None:
    now = time.time_ns()
    s = 10**9

    def one(session: str | None, user: str, start: int, end: int, cost: float | None, error: bool = False) -> None:
        attributes = {"user.id": user, **({"session.id": session} if session else {})}
        client.traces.ingest([_span(_id(16), _id(8), None, "answer", start=start, end=end, cost=cost,
                                    input_tokens=10, output_tokens=2, attributes=attributes,
                                    status="ERROR" if error else "OK")])

    one("chat-1", "ana", now - 50 * s, now - 49 * s, 0.25)
    one("chat-1", "bo", now - 40 * s, now - 39 * s, None, error=True)
    one("chat-2", "ana", now - 10 * s, now - 9 * s, 0.5)
    one(None, "ana", now - 5 * s, now - 4 * s, 1.0)  # no session: not listed
    one("old", "ana", now - 10**4 * s, now - 10**4 * s + s, 1.0)  # before `since`
    got = client.traces.sessions(since="1h")
    assert [x.session for x in got] == ["chat-2", "chat-1"]  # most recently active first
    chat1 = got[1]
    assert (chat1.traces, chat1.users, chat1.errors, chat1.input_tokens, chat1.output_tokens) == (2, 2, 1, 20, 4)
    assert chat1.cost == pytest.approx(0.25) and chat1.first_ns == now - 50 * s and chat1.last_ns == now - 39 * s
    assert [x.session for x in client.traces.sessions(since="1h", limit=1)] == ["chat-2"]
    for bad in ({"limit": 0}, {"limit": 10**6}, {"limit": "3"}, {"since": "yesterday-ish"}):
        with pytest.raises(InvalidInput):
            client.traces.sessions(**bad)
