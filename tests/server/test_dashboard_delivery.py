"""The delivery page (`/delivery`) through FastAPI's TestClient, on SQLite and PostgreSQL.

The history is the one of tests/audit/test_delivery (a frozen clock, hours after T0), plus one more
rollback of fraud-api at hour 70 whose reason is an HTML injection: the page shows the five metrics as
cards, the lead time of each version, the rollbacks, the coverage per model and the drift alert with the
promotion that followed it, every piece of user text escaped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from arsenale.platform import Client
from arsenale.server.dashboard import install
from tests.audit.test_delivery import END, HOUR, T0, Clock, History, build_history, clock, iso  # noqa: F401
from tests.server.test_dashboard_deployments import cell, rows_of, section, text_of

EVIL = "<script>alert(1)</script>"
WINDOW = {"since": iso(T0), "until": iso(END)}


@dataclass
class Site:
    http: TestClient
    client: Client
    history: History


def make_app(client: Client) -> FastAPI:
    app = FastAPI()
    app.state.client = client
    install(app)
    return app


@pytest.fixture
def site(store_uri: str, tmp_path: Path, clock: Clock) -> Iterator[Site]:  # noqa: F811
    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="alice")
    history = build_history(client, clock, tmp_path)
    clock.at(70)
    client.deployments.rollback("fraud-api", reason=EVIL)
    clock.at(72)
    with TestClient(make_app(client)) as http:
        yield Site(http, client, history)


def card(html: str, ident: str) -> str:
    return text_of(section(html, f"card-{ident}").split(">", 1)[1])


def test_the_five_metrics_as_cards(site: Site) -> None:
    r = site.http.get("/delivery", params=WINDOW)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<a href="/delivery">Delivery</a>' in html  # the nav link
    assert text_of(html.split('id="window">', 1)[1].split("</span>", 1)[0]) == \
        "2024-03-04T00:00:00Z – 2024-03-07T00:00:00Z (3d 0h)"
    assert card(html, "lead-time") == "Lead time to production 22h 00m median, p90 23h 36m, over 3 versions: " \
                                      "from the run's start to serving production"
    assert card(html, "frequency") == "Deployment frequency 11.7 / week 1.67 / day; 5 production changes: " \
                                      "2 create, 3 canary"
    assert card(html, "rollbacks") == "Rollback rate 60.0% 3 rollbacks / 5 production changes"
    assert card(html, "monitoring") == "Production models monitored 50.0% 1 of 2; unmonitored: fraud"
    assert card(html, "alerts") == "Drift alert → next promotion 9h 00m median; 1 of 1 drift alert " \
                                   "followed by a new version in production"


def test_the_lists_under_the_cards(site: Site) -> None:
    html = site.http.get("/delivery", params=WINDOW).text
    leads = rows_of(html, "lead-times-table")
    assert [text_of(row) for row in leads] == [
        f"churn v1 {site.history.runs['r1'][:12]}… 2024-03-04 00:00:00 2024-03-05 00:00:00 churn-api create 1d 0h",
        "fraud v1 — — 2024-03-05 02:00:00 fraud-api create registered without a run",
        f"churn v2 {site.history.runs['r2'][:12]}… 2024-03-04 10:00:00 2024-03-05 08:00:00 churn-api advance 22h 00m",
        f"churn v3 {site.history.runs['r3'][:12]}… 2024-03-05 20:00:00 2024-03-06 01:00:00 churn-api advance 5h 00m",
    ]
    assert 'href="/models/churn/versions/2"' in leads[2] and f'href="/runs/{site.history.runs["r2"]}"' in leads[2]

    rollbacks = rows_of(html, "rollbacks-table")
    assert [(cell(row, "by"), cell(row, "change nowrap")) for row in rollbacks] == [
        ("alice", "churn/2 → churn/1"), ("canary controller", "fraud/1 → fraud/1"), ("alice", "fraud/1 → fraud/1")]
    assert cell(rollbacks[2], "why") == EVIL  # shown as text...
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # ...never run

    coverage = rows_of(html, "coverage-table")
    assert [(text_of(row)) for row in coverage] == ["churn churn-api churn-drift", "fraud fraud-api unmonitored"]
    (alert,) = rows_of(html, "alerts-table")
    assert text_of(alert) == f"{site.history.alert_ids['drift']} 2024-03-05 16:00:00 churn-drift drift_share > 0.3 " \
                             "churn v3 at 2024-03-06 01:00:00 9h 00m"
    assert 'href="/models/churn/versions/3"' in alert


def test_one_model_and_metrics_without_data(site: Site) -> None:
    html = site.http.get("/delivery", params={**WINDOW, "model": "fraud"}).text
    assert "· model fraud" in html
    assert card(html, "lead-time") == "Lead time to production — " \
                                      "no version that started serving production has a run with a start time"
    assert card(html, "alerts") == "Drift alert → next promotion — " \
                                   f"no drift alerts fired of model 'fraud' between {iso(T0)} and {iso(END)}"
    assert card(html, "monitoring") == "Production models monitored 0.0% 0 of 1; unmonitored: fraud"
    assert text_of(section(html, "alerts").split(">", 1)[1]).endswith(
        f"no drift alerts fired of model 'fraud' between {iso(T0)} and {iso(END)}.")


def test_bad_parameters_show_the_message_beside_the_form(site: Site) -> None:
    before = site.client.audit.entries(limit=None)
    for params, status, message in [
        ({"since": "last tuesday"}, 400, "since must be a datetime, an ISO 8601 time"),
        ({"since": "2099-01-01"}, 400, "since (2099-01-01T00:00:00Z) is in the future"),
        ({"model": EVIL}, 400, "model name"),
        ({"model": "nope"}, 404, "no registered model named 'nope'"),
    ]:
        r = site.http.get("/delivery", params=params)
        assert r.status_code == status, (params, r.text[:300])
        assert message in text_of(r.text.split('id="delivery-error">', 1)[1].split("</div>", 1)[0])
        assert 'id="delivery-form"' in r.text and 'id="card-lead-time"' not in r.text
        assert EVIL not in r.text
    assert site.client.audit.entries(limit=None) == before


def test_the_default_window_is_the_last_30_days(site: Site) -> None:
    html = site.http.get("/delivery").text
    assert 'value="30d"' in html
    assert "2024-02-06T00:00:00Z – 2024-03-07T00:00:00Z (30d 0h)" in html
    assert card(html, "frequency").startswith("Deployment frequency 1.17 / week")
