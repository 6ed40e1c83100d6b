"""LLM monitors: windows over stored traces, alerted on with the model monitors' rules.

On SQLite, PostgreSQL and over HTTP (the `client` fixture): traces are ingested with known latencies, costs,
tokens, statuses and scores, and each window's values must be exactly what they imply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.monitoring.scheduling import run_due_monitors
from arsenale.platform import Client
from tests.e2e import test_dashboard_browser as runs_pages
from tests.e2e.test_dashboard_browser import Tab, assert_charts_drawn
from tests.server.test_app import BAD, EXISTS, MISSING, assert_error

HOUR = 3_600_000
BASE = 1_800_000_000_000  # the end of the first window (epoch ms)
MS = 1_000_000  # ns


def _id(n: int) -> str:
    return os.urandom(n).hex()


def trace(client: Any, *, start_ms: int, latency_ms: float, name: str = "answer", cost: float | None = None,
          tokens: tuple[int, int] = (0, 0), error: bool = False, attributes: dict[str, Any] | None = None,
          scores: dict[str, list[float]] | None = None) -> str:
    """One trace: a root span and one generation span under it; the generation carries tokens and cost."""
    t, root, gen = _id(16), _id(8), _id(8)
    start, end = start_ms * MS, start_ms * MS + int(latency_ms * MS)
    result = client.traces.ingest([
        {"trace_id": t, "span_id": root, "name": name, "start_ns": start, "end_ns": end,
         "attributes": attributes or {}},
        {"trace_id": t, "span_id": gen, "parent_span_id": root, "name": "llm", "start_ns": start + 1,
         "end_ns": end - 1, "status": "ERROR" if error else "OK", "cost": cost, "input_tokens": tokens[0],
         "output_tokens": tokens[1]},
    ])
    assert result.rejected == 0, result.errors
    for score, values in (scores or {}).items():
        for v in values:
            client.traces.score(t, score, v, source="auto")
    return t


def seed_window(client: Any, end: int) -> None:
    """Five `answer` traces in the hour ending at `end`, plus traces the monitor must not count."""
    s = end - HOUR
    trace(client, start_ms=s + 1000, latency_ms=100, cost=0.1, tokens=(10, 1),
          scores={"groundedness": [0.9, 0.7], "thumbs": [1, 0], "user rating": [4]})
    trace(client, start_ms=s + 2000, latency_ms=200, cost=0.2, tokens=(20, 2),
          scores={"groundedness": [0.6], "thumbs": [0]})
    trace(client, start_ms=s + 3000, latency_ms=300, cost=0.3, tokens=(30, 3), scores={"thumbs": [1]})
    trace(client, start_ms=s + 4000, latency_ms=400, cost=0.4, tokens=(40, 4), error=True)
    trace(client, start_ms=s + 5000, latency_ms=1000, cost=None, tokens=(50, 5))
    # Not this monitor's: another trace name, before the window, and at its (exclusive) end.
    trace(client, start_ms=s + 6000, latency_ms=99_999, cost=100.0, name="other", scores={"groundedness": [0]})
    trace(client, start_ms=s - 1, latency_ms=99_999, cost=100.0)
    trace(client, start_ms=end, latency_ms=99_999, cost=100.0)


def test_window_values_are_what_the_traces_imply(client: Any) -> None:
    client.monitors.create_llm("support-bot", trace_name="answer", window="1h")
    seed_window(client, BASE)
    run = client.monitors.run("support-bot", now=BASE)
    v = run.values
    assert (run.rows, run.window_start, run.window_end, run.model) == (5, BASE - HOUR, BASE, None)
    assert v["traces"] == 5 and v["errors"] == 1 and v["error_rate"] == pytest.approx(0.2)
    # latencies 100, 200, 300, 400, 1000 ms; linear interpolation between the closest ranks
    assert v["latency_p50"] == pytest.approx(300)
    assert v["latency_p95"] == pytest.approx(400 + 0.8 * 600)
    assert v["latency_p99"] == pytest.approx(400 + 0.96 * 600)
    assert v["latency_mean"] == pytest.approx(400)
    assert v["cost_total"] == pytest.approx(1.0) and v["cost_mean"] == pytest.approx(0.25)  # one unpriced
    assert (v["tokens_in"], v["tokens_out"]) == (150, 15)
    assert v["score.groundedness"] == pytest.approx((0.8 + 0.6) / 2)  # each trace's mean, then their mean
    assert v["score.thumbs"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert v["score.user_rating"] == pytest.approx(4)  # "user rating" as a rule can name it
    assert v["feedback_count"] == 3 and v["negative_feedback_share"] == pytest.approx(2 / 5)  # latest thumbs
    stored = client.monitors.get_run("support-bot", run.id)
    assert stored.values == v and stored.report["llm"]["traces"] == 5
    assert client.monitors.get("support-bot").kind == "llm"


def test_an_empty_window_is_no_data_not_zero(client: Any) -> None:
    client.monitors.create_llm("quiet", window="10m")
    v = client.monitors.run("quiet", now=BASE).values
    assert (v["traces"], v["cost_total"], v["tokens_in"], v["feedback_count"]) == (0, 0, 0, 0)
    assert all(v[k] is None for k in ("error_rate", "latency_p50", "latency_p95", "cost_mean",
                                      "negative_feedback_share"))
    assert not any(k.startswith("score.") for k in v)


def test_prompt_and_tag_filters(client: Any) -> None:
    s = BASE - HOUR
    trace(client, start_ms=s + 1, latency_ms=10, attributes={"arsenale.prompt": "prompts:/support/1", "env": "prod"})
    trace(client, start_ms=s + 2, latency_ms=20, attributes={"arsenale.prompt": "prompts:/support/2", "env": "prod"})
    trace(client, start_ms=s + 3, latency_ms=30, attributes={"arsenale.prompt": "prompts:/support/2", "env": "dev"})
    trace(client, start_ms=s + 4, latency_ms=40, attributes={"arsenale.prompt": "prompts:/supportive/1"})
    client.monitors.create_llm("any-version", prompt="support")
    client.monitors.create_llm("v2", prompt="support/2")
    client.monitors.create_llm("v2-prod", prompt="prompts:/support/2", tags={"env": "prod"})
    client.monitors.create_llm("prod", tags={"env": "prod"})
    counts = {m: client.monitors.run(m, now=BASE).rows for m in ("any-version", "v2", "v2-prod", "prod")}
    assert counts == {"any-version": 3, "v2": 2, "v2-prod": 1, "prod": 2}


def test_rules_fire_after_n_bad_windows_and_resolve(client: Any) -> None:
    monitors = client.monitors
    monitors.create_llm("support-bot", trace_name="answer", window="1h")
    alerts = monitors.alerts
    grounded = alerts.add_rule("support-bot", "score.groundedness < 0.7 for 2 windows")
    slow = alerts.add_rule("support-bot", "latency_p95 > 2000")
    costly = alerts.add_rule("support-bot", "cost_total > 5")

    def window(k: int, *, groundedness: float, latency: float, cost: float) -> Any:
        end = BASE + k * HOUR
        for i in range(4):
            trace(client, start_ms=end - HOUR + 1000 * (i + 1), latency_ms=latency, cost=cost / 4,
                  scores={"groundedness": [groundedness]})
        return monitors.run("support-bot", now=end)

    first = window(0, groundedness=0.5, latency=3000, cost=8)
    assert sorted(a.rule for a in first.alerts) == ["cost_total > 5", "latency_p95 > 2000"]
    assert all(a.status == "firing" for a in first.alerts)
    second = window(1, groundedness=0.6, latency=100, cost=1)
    by_rule = {a.rule: a for a in second.alerts}
    assert by_rule["score.groundedness < 0.7 for 2 windows"].status == "firing"
    assert by_rule["score.groundedness < 0.7 for 2 windows"].value == pytest.approx(0.6)
    assert by_rule["latency_p95 > 2000"].status == "resolved"
    assert by_rule["cost_total > 5"].status == "resolved"
    third = window(2, groundedness=0.9, latency=100, cost=1)
    assert [(a.rule_id, a.status) for a in third.alerts] == [(grounded.id, "resolved")]
    history = alerts.list_alerts(monitor="support-bot")
    assert {(a.rule_id, a.status) for a in history} == {(grounded.id, "resolved"), (slow.id, "resolved"),
                                                       (costly.id, "resolved")}
    fired = next(a for a in history if a.rule_id == grounded.id)
    assert fired.evidence["values"]["score.groundedness"] == pytest.approx(0.6)


def test_firing_and_resolving_are_audited(store_uri: str, tmp_path: Path) -> None:
    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    client.monitors.create_llm("bot", window="1h")
    client.monitors.alerts.add_rule("bot", "error_rate > 0.5")
    trace(client, start_ms=BASE - 10, latency_ms=5, error=True)
    assert client.monitors.run("bot", now=BASE).alerts[0].status == "firing"
    trace(client, start_ms=BASE + HOUR - 10, latency_ms=5)
    assert client.monitors.run("bot", now=BASE + HOUR).alerts[0].status == "resolved"
    actions = [e.action for e in client.audit.entries(entity_type="alert", limit=None)]
    assert actions == ["alert.fire", "alert.resolve"] and client.audit.verify().ok
    created = client.audit.entries(entity_type="monitor", limit=None)
    assert created[0].action == "monitor.create"


def test_the_scheduler_runs_llm_monitors(store_uri: str, tmp_path: Path) -> None:
    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    monitor = client.monitors.create_llm("nightly", window="1h", schedule="0 * * * *")
    assert monitor.next_run_time is not None
    trace(client, start_ms=monitor.next_run_time - 60_000, latency_ms=42, cost=0.5)
    ticks = run_due_monitors(client.monitors, now=monitor.next_run_time)
    assert [(t.monitor, t.status) for t in ticks] == [("nightly", "succeeded")]
    run = client.monitors.runs("nightly")[0]
    assert (run.id, run.values["traces"], run.values["cost_total"]) == (ticks[0].run_id, 1, 0.5)
    assert run_due_monitors(client.monitors, now=monitor.next_run_time) == []  # that tick is taken


# ---- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_is_refused_and_changes_nothing(client: Any) -> None:
    monitors = client.monitors
    monitors.create_llm("bot", trace_name="answer")
    before = (monitors.list(), monitors.alerts.list_rules())
    bad_creates: list[tuple[dict[str, Any], str]] = [
        ({"window": "forever"}, "window"), ({"window": 0}, "window"), ({"window": True}, "window"),
        ({"window": "400d"}, "window"), ({"schedule": "sometimes"}, "schedule"),
        ({"trace_name": ""}, "trace_name"), ({"trace_name": 7}, "trace_name"),
        ({"trace_name": "x" * 300}, "trace_name"), ({"prompt": "no such/prompt/at all"}, "prompt"),
        ({"prompt": "support@v2"}, "prompt"), ({"tags": ["env=prod"]}, "tags"),
        ({"tags": {"env": {"nested": 1}}}, "tags"), ({"tags": {f"k{i}": "v" for i in range(100)}}, "tags"),
        ({"tags": {"env": "x" * 5000}}, "tags"), ({"feedback": ""}, "feedback"),
    ]
    for kwargs, field in bad_creates:
        with pytest.raises(InvalidInput) as err:
            monitors.create_llm("other", **kwargs)
        assert err.value.field is not None and field in err.value.field, (kwargs, err.value.field)
    for name in ("", "../etc", "x" * 200, "a b"):
        with pytest.raises(InvalidInput):
            monitors.create_llm(name)
    with pytest.raises(Conflict):
        monitors.create_llm("bot")
    for rule in ("drift_share > 0.3", "latency_p96 > 1", "score. > 1", "scores.x < 1", "accuracy < 0.9"):
        with pytest.raises(InvalidInput) as err:
            monitors.alerts.add_rule("bot", rule)
        assert err.value.field == "when"
    with pytest.raises(InvalidInput):
        monitors.alerts.add_rule("bot", "latency_p95 >")
    with pytest.raises(NotFound):
        monitors.alerts.add_rule("no-such-monitor", "latency_p95 > 1")
    with pytest.raises(NotFound):
        monitors.run("no-such-monitor")
    for now in ("yesterday", -5, True, 1.5):
        with pytest.raises(InvalidInput):
            monitors.run("bot", now=now)
    assert (monitors.list(), monitors.alerts.list_rules()) == before
    assert monitors.runs("bot") == []


def test_an_llm_monitor_has_no_drift_report(client: Any) -> None:
    client.monitors.create_llm("bot")
    client.monitors.run("bot", now=BASE)
    if hasattr(client.monitors, "report_html"):
        with pytest.raises(NotFound):
            client.monitors.report_html("bot")


L = "/api/v1/monitors/llm"
OK: dict[str, Any] = {"name": "bot", "trace_name": "answer", "window": "1h"}


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({**OK, "name": 5}, 400, BAD, "name"),
    ({"trace_name": "answer"}, 400, BAD, "name"),
    ({**OK, "window": True}, 400, BAD, "window"),
    ({**OK, "window": "soon"}, 400, BAD, "window"),
    ({**OK, "window": 0}, 400, BAD, "window"),
    ({**OK, "schedule": "every day"}, 400, BAD, "schedule"),
    ({**OK, "trace_name": 5}, 400, BAD, "trace_name"),
    ({**OK, "trace_name": "a\u0000b"}, 400, BAD, "trace_name"),
    ({**OK, "prompt": "a b c"}, 400, BAD, "prompt"),
    ({**OK, "tags": ["env"]}, 400, BAD, "tags"),
    ({**OK, "tags": {"env": [1]}}, 400, BAD, "tags"),
    ({**OK, "tags": {"env": "x" * 5000}}, 400, BAD, "tags"),
    ({**OK, "feedback": None}, 400, BAD, "feedback"),
    ({**OK, "deployment": "bc"}, 400, BAD, "deployment"),
    ({**OK, "name": "../x"}, 400, BAD, "name"),
    ({**OK, "name": "taken"}, 409, EXISTS, "name"),
    ({**OK, "tags": {f"k{i}": "v" * 900 for i in range(2000)}}, 400, BAD, "tags"),  # a 1.8 MB body
])
def test_rest_create_llm_refuses_bad_bodies(tmp_path: Path, body: Any, status: int, code: str,
                                            field: str) -> None:
    from arsenale.server.app import create_app

    client = Client(f"sqlite:///{tmp_path / 'arsenale.db'}", artifacts=str(tmp_path / "artifacts"))
    client.monitors.create_llm("taken")
    with TestClient(create_app(client)) as http:
        assert_error(http.post(L, json=body), status, code, field)
        assert [m.name for m in client.monitors.list()] == ["taken"]
        assert http.post(L, json=OK).status_code == 201
        assert_error(http.get("/api/v1/monitors/bot/report"), 404, MISSING, "name")
        assert_error(http.post("/api/v1/alerts/rules", json={"monitor": "bot", "when": "rows > 1"}), 400, BAD,
                     "when")


# ---- the dashboard and the CLI ------------------------------------------------------------------------------


def test_dashboard_shows_an_llm_monitor(store_uri: str, tmp_path: Path) -> None:
    from arsenale.server.dashboard import install

    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    client.monitors.create_llm("bot", trace_name="answer", tags={"env": "<b>prod</b>"})
    client.monitors.create_llm("idle")
    client.monitors.alerts.add_rule("bot", "latency_p95 > 150")
    for k in range(3):
        end = BASE + k * HOUR
        trace(client, start_ms=end - 1000, latency_ms=100 + 100 * k, cost=0.25 * (k + 1),
              attributes={"env": "<b>prod</b>"}, scores={"groundedness": [0.5 + 0.1 * k]})
        trace(client, start_ms=end - 2000, latency_ms=5000, attributes={"env": "dev"})  # filtered out
        assert client.monitors.run("bot", now=end).rows == 1
    app = FastAPI()
    app.state.client = client
    install(app)
    with TestClient(app) as http:
        listing = http.get("/monitors")
        assert listing.status_code == 200 and "LLM traces" in listing.text and "idle" in listing.text
        page = http.get("/monitors/bot")
        assert page.status_code == 200, page.text
        text = page.text
        for chart in ("chart-traces", "chart-latency", "chart-cost", "chart-scores"):
            assert chart in text
        assert "score.groundedness" in text and "&lt;b&gt;prod&lt;/b&gt;" in text and "<b>prod" not in text
        assert 'data-status="firing"' in text
        assert http.get("/monitors/idle").status_code == 200
        assert http.get("/monitors/bot/report.html").status_code == 404


def test_cli_create_llm_run_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cli.test_cli import cli, strict_json

    monkeypatch.setenv("ARSENALE_HOME", str(tmp_path / ".arsenale"))
    monkeypatch.chdir(tmp_path)
    out = cli("monitor", "create-llm", "bot", "--trace-name", "answer", "--tag", "env=prod", "--window", "2h")
    assert "LLM monitor bot" in out.stdout
    client = Client()
    trace(client, start_ms=_now_ms() - 60_000, latency_ms=250, cost=0.5, attributes={"env": "prod"},
          scores={"groundedness": [0.75]})
    result = strict_json(cli("monitor", "run", "bot", "--json").stdout)
    assert result["rows"] == 1 and result["values"]["latency_p95"] == 250
    table = cli("monitor", "run", "bot").stdout
    assert "latency_p95" in table and "score.groundedness" in table
    assert "cost_total" in cli("monitor", "history", "bot").stdout
    assert "(llm)" in cli("monitor", "list").stdout
    cli("monitor", "create-llm", "bad", "--tag", "novalue", code=2)
    cli("monitor", "create-llm", "bad", "--window", "forever", code=2)
    cli("monitor", "run", "nope", code=3)
    cli("monitor", "report", "bot", code=3)
    cli("alerts", "rule", "add", "--monitor", "bot", "--when", "drift_share > 0.3", code=2)
    assert [m.name for m in client.monitors.list()] == ["bot"]


def _now_ms() -> int:
    from arsenale.tracking.models import now_ms

    return now_ms()


browser = runs_pages.browser  # the system Chromium, and a tab that records console errors
tab = runs_pages.tab


@pytest.mark.browser
def test_in_a_browser_the_llm_charts_draw(tmp_path: Path, tab: Tab) -> None:
    from arsenale.server.app import create_app
    from tests.conftest import LiveServer

    client = Client(f"sqlite:///{tmp_path / 'arsenale.db'}", artifacts=str(tmp_path / "artifacts"))
    client.monitors.create_llm("bot")
    for k in range(4):
        end = BASE + k * HOUR
        for i in range(3):
            trace(client, start_ms=end - 1000 * (i + 1), latency_ms=100 * (k + i + 1), cost=0.1 * (k + 1),
                  scores={"groundedness": [0.9 - 0.1 * k], "helpfulness": [0.5]})
        client.monitors.run("bot", now=end)
    with LiveServer(create_app(client)) as server:
        page: Any = tab.page
        page.goto(f"{server.url}/monitors")
        page.click('#monitors-table a:text-is("bot")')
        page.wait_for_url("**/monitors/bot")
        assert_charts_drawn(page, expected=4)  # traces, latency, cost, scores
        legend = page.locator("#chart-scores .u-legend").inner_text()
        assert "groundedness" in legend and "helpfulness" in legend
        assert page.locator("#recent-table tbody tr").count() == 4
    assert tab.errors == []


def test_prometheus_exports_an_llm_monitors_newest_window(store_uri: str, tmp_path: Path) -> None:
    local = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    local.monitors.create_llm("support-bot", trace_name="answer", window="1h")
    seed_window(local, BASE)
    local.monitors.run("support-bot", now=BASE)
    from arsenale.server.app import create_app

    with TestClient(create_app(local)) as api:
        text = api.get("/metrics").text
    labels = 'deployment="",monitor="support-bot"'
    assert f"arsenale_llm_monitor_traces{{{labels}}} 5.0" in text
    assert f"arsenale_llm_monitor_latency_p95_ms{{{labels}}} 879.99" in text
    assert f"arsenale_llm_monitor_cost_total{{{labels}}} 1.0" in text
    assert 'arsenale_llm_monitor_score{monitor="support-bot",score="groundedness"} 0.7' in text
    assert 'arsenale_llm_monitor_score{monitor="support-bot",score="user_rating"} 4.0' in text
    assert "arsenale_monitor_drift_share{" not in text  # an LLM window has no drift figures
