"""`GET /api/v1/metrics/delivery` on a real store (SQLite and PostgreSQL): the report the local service
computes, as JSON; bad query parameters get a 4xx naming the field and change nothing.

The history is the one of tests/audit/test_delivery (a frozen clock, hours after T0).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from arsenale.audit.models import DeliveryReport
from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.audit.test_delivery import END, HOUR, T0, Clock, build_history, clock, iso  # noqa: F401  (fixture)
from tests.server.test_app import BAD, MISSING, assert_error

PATH = "/api/v1/metrics/delivery"


@pytest.fixture
def local(store_uri: str, tmp_path: Path) -> Client:
    return Client(store_uri, artifacts=str(tmp_path / "artifacts"))


@pytest.fixture
def api(local: Client) -> TestClient:
    return TestClient(create_app(local))


def test_the_report_is_the_local_services(api: TestClient, local: Client, clock: Clock,  # noqa: F811
                                          tmp_path: Path) -> None:
    build_history(local, clock, tmp_path)
    window = {"since": iso(T0), "until": iso(END)}
    response = api.get(PATH, params=window)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    report = DeliveryReport.model_validate_json(response.content)
    assert report == local.metrics.delivery(**window)
    assert (report.lead_time.median_s, report.deployment_frequency.changes, report.rollback_rate.rate,
            report.monitoring.share, report.alert_to_promotion.median_s) == (22 * 3600.0, 5, 0.4, 0.5, 9 * 3600.0)
    # A metric without data is null with its reason, in the JSON too.
    body = api.get(PATH, params={**window, "model": "fraud"}).json()
    assert body["model"] == "fraud"
    assert body["lead_time"]["median_s"] is None and body["lead_time"]["reason"]
    assert body["monitoring"]["share"] == 0.0 and body["monitoring"]["unmonitored"] == ["fraud"]
    # Durations and offsets with an encoded "+": the same window.
    clock.at(144)
    same = api.get(PATH, params={"since": "2024-03-04T01:00:00+01:00", "until": "72h"})
    assert DeliveryReport.model_validate_json(same.content) == report
    assert DeliveryReport.model_validate_json(api.get(PATH, params={"until": "72h"}).content).until == END
    # The Prometheus figures keep their own /metrics.
    assert api.get("/metrics").headers["content-type"].startswith("text/plain")


def test_bad_parameters_get_4xx_naming_the_field_and_change_nothing(api: TestClient, local: Client,
                                                                     clock: Clock, tmp_path: Path) -> None:  # noqa: F811
    build_history(local, clock, tmp_path)
    before = local.audit.entries(limit=None)
    for params, status, code, field in [
        ({"since": "yesterday"}, 400, BAD, "since"),
        ({"since": "2024"}, 400, BAD, "since"),  # a year is no duration: durations need a unit
        ({"since": "0h"}, 400, BAD, "since"),
        ({"since": "9" * 30 + "w"}, 400, BAD, "since"),  # before 1970, never a 500 from the calendar
        ({"since": "9" * 400 + "d"}, 400, BAD, "since"),
        ({"since": iso(END + HOUR)}, 400, BAD, "since"),
        ({"since": iso(T0 + 10 * HOUR), "until": iso(T0 + 5 * HOUR)}, 400, BAD, "since"),
        ({"until": iso(END + HOUR)}, 400, BAD, "until"),
        ({"until": "x" * 65}, 400, BAD, "until"),  # longer than any time: refused before it is parsed
        ({"since": "1" * 10_000}, 400, BAD, "since"),
        ({"model": "nope"}, 404, MISSING, "model"),
        ({"model": "a/b"}, 400, BAD, "model"),
        ({"model": "m" * 300}, 400, BAD, "model"),
    ]:
        assert_error(api.get(PATH, params=params), status, code, field)
    assert api.post(PATH).status_code == 405
    assert local.audit.entries(limit=None) == before


def test_the_route_is_in_the_openapi_schema(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    op = spec["paths"][PATH]["get"]
    assert op["tags"] == ["metrics"]
    assert sorted(p["name"] for p in op["parameters"]) == ["model", "since", "until"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/DeliveryReport")
