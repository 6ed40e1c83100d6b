"""The project boundary around LLMOps: prompts, traces and vector indexes. Made as alpha, they are absent for
beta (the same 404 as a missing one, the store unchanged), hidden from beta's lists, and visible to an
all-projects token unless it names a project. A span batch for another project's trace never attaches to it.
SQLite and PostgreSQL (the `projects` fixture)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from arsenale.errors import Conflict, NotFound
from arsenale.llm.vectors import VectorIndex
from arsenale.security.projects import PROJECT_HEADER, project
from arsenale.store.llm_windows import window_traces
from tests.security.conftest import Projects, listed, same_404

P = "/api/v1/prompts"
T = "/api/v1/traces"
X = "/api/v1/indexes"
TRACE_A = "a" * 31 + "1"
TRACE_B = "b" * 31 + "2"
GHOST_TRACE = "c" * 31 + "3"


# ---- prompts -------------------------------------------------------------------------------------------------


def _register(projects: Projects, headers: dict[str, str], name: str, template: str = "Hi {{ who }}") -> Any:
    return projects.api.post(P, json={"name": name, "template": template}, headers=headers)


def test_a_prompt_is_made_in_the_requests_project(projects: Projects) -> None:
    assert _register(projects, projects.alpha, "p-alpha").status_code == 201
    got = projects.api.get(f"{P}/p-alpha", headers=projects.alpha)
    assert got.status_code == 200 and got.json()["project"] == "alpha"
    assert projects.local.prompts.get_prompt("p-alpha").project == "alpha"


def test_another_projects_prompt_reads_as_missing_and_stays_unchanged(projects: Projects) -> None:
    _register(projects, projects.alpha, "p-alpha")
    assert projects.api.put(f"{P}/p-alpha/labels/prod", json={"version": 1},
                            headers=projects.alpha).status_code == 200
    for method, path, kw in [("GET", f"{P}/p-alpha", {}), ("GET", f"{P}/p-alpha/versions", {}),
                             ("GET", f"{P}/p-alpha/versions/1", {}), ("GET", f"{P}/p-alpha/versions/latest", {}),
                             ("GET", f"{P}/p-alpha/labels/prod", {}), ("GET", f"{P}/p-alpha/diff?a=1&b=1", {}),
                             ("PUT", f"{P}/p-alpha/labels/staging", {"json": {"version": 1}}),
                             ("PUT", f"{P}/p-alpha/labels/prod", {"json": {"version": 1}}),
                             ("DELETE", f"{P}/p-alpha/labels/prod", {})]:
        same_404(projects, method, path, "p-alpha", "p-ghost", **kw)
    taken = _register(projects, projects.beta, "p-alpha", "Bye {{ who }}")
    assert taken.status_code == 409 and "already taken" in taken.json()["message"]
    versions = projects.local.prompts.versions("p-alpha")
    assert [(v.version, v.template, v.labels) for v in versions] == [(1, "Hi {{ who }}", ["prod"])]
    assert projects.local.prompts.get_prompt("p-alpha").labels == {"prod": 1}


def test_prompt_lists_show_the_projects_own(projects: Projects) -> None:
    _register(projects, projects.alpha, "p-alpha")
    _register(projects, projects.beta, "p-beta")
    projects.api.put(f"{P}/p-alpha/labels/prod", json={"version": 1}, headers=projects.alpha)

    def names(headers: dict[str, str]) -> set[str]:
        return listed(projects.api, P, headers)

    assert names(projects.alpha) == {"p-alpha"}
    beta = projects.api.get(P, headers=projects.beta).text
    assert "p-alpha" not in beta and "p-beta" in beta
    assert names(projects.root) == {"p-alpha", "p-beta"}
    assert names({**projects.root, PROJECT_HEADER: "beta"}) == {"p-beta"}
    assert {p.name: p.project for p in projects.local.prompts.list()} == {"p-alpha": "alpha", "p-beta": "beta"}


def test_prompts_in_an_embedded_project_block(projects: Projects) -> None:
    svc = projects.local.prompts
    with project("alpha"):
        svc.register("p-alpha", "Hi {{ who }}")
        assert [p.name for p in svc.list()] == ["p-alpha"]
    with project("beta"):
        with pytest.raises(NotFound, match="does not exist"):
            svc.get("p-alpha")
        with pytest.raises(NotFound, match="does not exist"):
            svc.set_label("p-alpha", "prod", 1)
        with pytest.raises(Conflict):
            svc.register("p-alpha", "Hi {{ who }}")
        assert svc.list() == []
    assert svc.get_prompt("p-alpha").project == "alpha" and svc.get_prompt("p-alpha").labels == {}


# ---- traces --------------------------------------------------------------------------------------------------


def _span(trace_id: str, span_id: str, name: str, session: str | None = None, **extra: Any) -> dict[str, Any]:
    start = time.time_ns()
    attributes = {"session.id": session} if session else {}
    return {"trace_id": trace_id, "span_id": span_id, "name": name, "start_ns": start, "end_ns": start + 1000,
            "attributes": attributes, **extra}


def _ingest(projects: Projects, headers: dict[str, str], *spans: dict[str, Any]) -> dict[str, Any]:
    r = projects.api.post(f"{T}/spans", json={"spans": list(spans)}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _stored(projects: Projects, trace_id: str) -> Any:
    trace = projects.local.traces.get(trace_id)
    return (trace.project, trace.name, trace.session, [(s.span_id, s.name) for s in trace.spans],
            [(s.name, s.value) for s in trace.scores])


def test_a_trace_is_made_in_the_project_that_first_sends_it(projects: Projects) -> None:
    _ingest(projects, projects.alpha, _span(TRACE_A, "1" * 16, "root-a", "s-alpha"))
    got = projects.api.get(f"{T}/{TRACE_A}", headers=projects.alpha)
    assert got.status_code == 200 and got.json()["project"] == "alpha"
    assert projects.local.traces.get(TRACE_A).project == "alpha"


def test_another_projects_trace_readsas_missing(projects: Projects) -> None:
    _ingest(projects, projects.alpha, _span(TRACE_A, "1" * 16, "root-a", "s-alpha"))
    before = _stored(projects, TRACE_A)
    same_404(projects, "GET", f"{T}/{TRACE_A}", TRACE_A, GHOST_TRACE)
    same_404(projects, "POST", f"{T}/{TRACE_A}/scores", TRACE_A, GHOST_TRACE, json={"name": "thumbs", "value": 0})
    assert _stored(projects, TRACE_A) == before


def test_a_span_batch_never_attaches_to_another_projects_trace(projects: Projects) -> None:
    _ingest(projects, projects.alpha, _span(TRACE_A, "1" * 16, "root-a", "s-alpha"))
    before = _stored(projects, TRACE_A)
    result = _ingest(projects, projects.beta,
                     _span(TRACE_A, "1" * 16, "hijacked", "s-beta"),  # the same span id: a replacement
                     _span(TRACE_A, "2" * 16, "child", parent_span_id="1" * 16),
                     _span(TRACE_B, "3" * 16, "root-b", "s-beta"))
    assert (result["accepted"], result["rejected"]) == (1, 2)
    assert any(TRACE_A in e and "another project" in e for e in result["errors"])
    assert _stored(projects, TRACE_A) == before
    assert projects.local.traces.get(TRACE_B).project == "beta"

    otlp = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE_A, "spanId": "4" * 16, "name": "otlp-hijack", "startTimeUnixNano": str(time.time_ns())}]}]}]}
    r = projects.api.post("/v1/traces", json=otlp, headers=projects.beta)
    assert r.status_code == 200, r.text
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert _stored(projects, TRACE_A) == before


def test_trace_lists_show_the_projects_own(projects: Projects) -> None:
    _ingest(projects, projects.alpha, _span(TRACE_A, "1" * 16, "root-a", "s-alpha"))
    _ingest(projects, projects.beta, _span(TRACE_B, "3" * 16, "root-b", "s-beta"))

    def ids(headers: dict[str, str]) -> set[str]:
        r = projects.api.get(T, headers=headers)
        assert r.status_code == 200
        return {t["trace_id"] for t in r.json()["traces"]}

    assert ids(projects.alpha) == {TRACE_A}
    assert ids(projects.beta) == {TRACE_B}
    assert ids(projects.root) == {TRACE_A, TRACE_B}
    assert ids({**projects.root, PROJECT_HEADER: "beta"}) == {TRACE_B}
    for path in (f"{T}?session=s-alpha", f"{T}?name=root-a", f"{T}/sessions"):
        text = projects.api.get(path, headers=projects.beta).text
        assert TRACE_A not in text and "s-alpha" not in text, path
    sessions = {s["session"] for s in projects.api.get(f"{T}/sessions", headers=projects.root).json()}
    assert sessions == {"s-alpha", "s-beta"}
    timeline = projects.api.get(f"{T}/timeline", headers=projects.beta).json()
    assert sum(b["traces"] for b in timeline) == 1


def test_traces_in_an_embedded_project_block(projects: Projects) -> None:
    svc = projects.local.traces
    with project("alpha"):
        assert svc.ingest([_span(TRACE_A, "1" * 16, "root-a")]).accepted == 1
    with project("beta"):
        with pytest.raises(NotFound, match=f"no trace {TRACE_A}"):
            svc.get(TRACE_A)
        with pytest.raises(NotFound):
            svc.score(TRACE_A, "thumbs", 1)
        assert svc.search().traces == []
        result = svc.ingest([_span(TRACE_A, "2" * 16, "hijack")])
        assert (result.accepted, result.rejected) == (0, 1)
    trace = svc.get(TRACE_A)
    assert (trace.project, [s.name for s in trace.spans], trace.scores) == ("alpha", ["root-a"], [])


def test_sdk_traces_land_in_the_project_they_were_made_in(projects: Projects) -> None:
    from arsenale.llm import tracer

    client = projects.local
    with project("alpha"):  # written later by the tracer's thread, which stands in no project block
        with tracer.trace("answer-alpha", client=client) as root:
            root.score("thumbs", 1.0)
    with project("beta"):
        with tracer.trace("answer-beta", client=client):
            pass
    with tracer.trace("answer-default", client=client):
        pass
    tracer.flush(client)
    found = {t.name: t for t in client.traces.search().traces}
    assert {n: found[n].project for n in ("answer-alpha", "answer-beta", "answer-default")} == {
        "answer-alpha": "alpha", "answer-beta": "beta", "answer-default": "default"}
    with project("beta"):
        assert [t.name for t in client.traces.search().traces] == ["answer-beta"]
    assert [s.name for s in client.traces.get(found["answer-alpha"].trace_id).scores] == ["thumbs"]


def test_otlp_exports_land_in_the_tokens_project(projects: Projects) -> None:
    def export(trace_id: str, headers: dict[str, str]) -> Any:
        span = {"traceId": trace_id, "spanId": "9" * 16, "name": "otel-root", "kind": 1,
                "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000000001000"}
        body = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "manual"}, "spans": [span]}]}]}
        return projects.api.post("/v1/traces", json=body, headers=headers)

    assert export(TRACE_A, projects.alpha).status_code == 200
    assert projects.local.traces.get(TRACE_A).project == "alpha"
    refused = export(TRACE_A, projects.beta)  # beta cannot add spans to alpha's trace by exporting its id
    assert refused.status_code == 200 and refused.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert [s.name for s in projects.local.traces.get(TRACE_A).spans] == ["otel-root"]
    assert export(TRACE_B, projects.alpha_viewer).status_code == 403


def test_llm_monitor_windows_read_every_project_when_unconfined(projects: Projects) -> None:
    _ingest(projects, projects.alpha, _span(TRACE_A, "1" * 16, "root-a"))
    _ingest(projects, projects.beta, _span(TRACE_B, "3" * 16, "root-b"))
    engine = projects.local.audit.engine  # type: ignore[attr-defined]

    def window() -> set[str]:
        with engine.connect() as conn:
            return {r.trace_id for r in window_traces(conn, since_ns=0, until_ns=2**62, name=None, prompts=[],
                                                      prompt_prefixes=[], with_attributes=False)}

    assert window() == {TRACE_A, TRACE_B}
    with project("beta"):
        assert window() == {TRACE_B}


# ---- vector indexes ------------------------------------------------------------------------------------------


def _add(projects: Projects, headers: dict[str, str], name: str, doc: str = "d1") -> Any:
    return projects.api.post(f"{X}/{name}/documents", headers=headers, json={
        "documents": [{"id": doc, "text": "refunds take 5 days"}], "vectors": [[1.0, 0.0, 0.0]], "dim": 3})


def test_an_index_is_made_in_the_requests_project(projects: Projects) -> None:
    assert _add(projects, projects.alpha, "kb-alpha").status_code == 201
    engine = projects.local.audit.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        from arsenale.store.tables import vector_indexes

        owner = conn.execute(vector_indexes.select().where(vector_indexes.c.name == "kb-alpha")).one().project
    assert owner == "alpha"
    assert projects.api.get(f"{X}/kb-alpha", headers=projects.alpha).json()["latest_version"] == 1


def test_another_projects_index_reads_as_missing_and_stays_unchanged(projects: Projects) -> None:
    _add(projects, projects.alpha, "kb-alpha")
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"{X}/kb-alpha", {}), ("GET", f"{X}/kb-alpha/versions", {}),
        ("GET", f"{X}/kb-alpha/versions/1", {}), ("GET", f"{X}/kb-alpha/versions/latest", {}),
        ("POST", f"{X}/kb-alpha/search", {"json": {"vector": [1.0, 0.0, 0.0], "k": 1}}),
        ("POST", f"{X}/kb-alpha/deletions", {"json": {"ids": ["d1"]}})]
    for method, path, kw in requests:
        same_404(projects, method, path, "kb-alpha", "kb-ghost", **kw)
    taken = _add(projects, projects.beta, "kb-alpha", "d2")
    assert taken.status_code == 409 and "already taken" in taken.json()["message"]
    versions = projects.local.indexes.versions("kb-alpha")
    assert [(v.version, v.count) for v in versions] == [(1, 1)]


def test_index_lists_show_the_projects_own(projects: Projects) -> None:
    _add(projects, projects.alpha, "kb-alpha")
    _add(projects, projects.beta, "kb-beta")

    def names(headers: dict[str, str]) -> set[str]:
        return listed(projects.api, X, headers)

    assert names(projects.alpha) == {"kb-alpha"}
    assert "kb-alpha" not in projects.api.get(X, headers=projects.beta).text
    assert names(projects.root) == {"kb-alpha", "kb-beta"}
    assert names({**projects.root, PROJECT_HEADER: "beta"}) == {"kb-beta"}


def test_indexes_in_an_embedded_project_block(projects: Projects) -> None:
    with project("alpha"):
        VectorIndex("kb-alpha", dim=3, client=projects.local).add(["a"], vectors=[[1.0, 0.0, 0.0]])
    with project("beta"):
        foreign = VectorIndex("kb-alpha", dim=3, client=projects.local)
        assert foreign.versions() == []
        for read in (foreign.get, lambda: foreign.get(1), lambda: foreign.search([1.0, 0.0, 0.0]),
                     lambda: foreign.delete(["a"])):
            with pytest.raises(NotFound):
                read()
        with pytest.raises(Conflict, match="already taken"):
            foreign.add(["b"], vectors=[[0.0, 1.0, 0.0]])
    mine = VectorIndex("kb-alpha", dim=3, client=projects.local)
    assert [(v.version, v.count) for v in mine.versions()] == [(1, 1)]


# ---- the dashboard -------------------------------------------------------------------------------------------


def test_the_dashboard_shows_a_project_session_its_own_llm_things(projects: Projects) -> None:
    _register(projects, projects.alpha, "p-alpha")
    _ingest(projects, projects.alpha, _span(TRACE_A, "1" * 16, "root-a", "s-alpha"))
    _add(projects, projects.alpha, "kb-alpha")
    _register(projects, projects.beta, "p-beta")
    _add(projects, projects.beta, "kb-beta")
    secret = projects.beta["Authorization"].removeprefix("Bearer ")
    projects.api.cookies.clear()
    login = projects.api.post("/login", data={"token": secret, "next": "/"}, follow_redirects=False)
    assert login.status_code == 303, login.text
    for page, own in (("/prompts", "p-beta"), ("/indexes", "kb-beta"), ("/traces", "Traces")):
        text = projects.api.get(page).text
        assert own in text and "p-alpha" not in text and "kb-alpha" not in text and TRACE_A not in text, page
    for page in ("/prompts/p-alpha", "/indexes/kb-alpha", f"/traces/{TRACE_A}"):
        assert projects.api.get(page).status_code == 404, page
    projects.api.cookies.clear()
