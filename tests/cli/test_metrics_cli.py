"""`arsenale metrics delivery` against a temporary SQLite store holding the history of
tests/audit/test_delivery (a frozen clock, hours after T0), directly and through a live server (`--uri`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.audit.test_delivery import END, HOUR, T0, Clock, build_history, clock, iso  # noqa: F401  (fixture)
from tests.cli.test_cli import cli, dump, home, strict_json  # noqa: F401  (`home` is a fixture)
from tests.conftest import LiveServer

DAY = 24 * HOUR


@pytest.fixture
def history(home: Path, clock: Clock, tmp_path: Path) -> Path:  # noqa: F811
    build_history(Client(), clock, tmp_path)
    return home / "arsenale.db"


def test_the_last_30_days_as_a_table_and_as_json(history: Path) -> None:
    report = strict_json(cli("metrics", "delivery", "--json").stdout)
    assert (report["since"], report["until"], report["model"]) == (END - 30 * DAY, END, None)
    assert (report["lead_time"]["median_s"], report["lead_time"]["p90_s"]) == (22 * 3600.0, 23.6 * 3600.0)
    assert report["deployment_frequency"]["changes"] == 5
    assert report["deployment_frequency"]["per_week"] == pytest.approx(7 * 5 / 30, rel=1e-12)
    assert (report["rollback_rate"]["rate"], report["monitoring"]["share"]) == (0.4, 0.5)
    assert report["alert_to_promotion"]["median_s"] == 9 * 3600.0

    out = cli("metrics", "delivery").stdout
    assert "delivery 2024-02-06T00:00:00Z – 2024-03-07T00:00:00Z (30d 0h)" in out
    lines = {line.split("  ")[0].strip(): " ".join(line.split()) for line in out.splitlines() if line.strip()}
    assert "median 22h 00m, p90 23h 36m 3 version(s)" in lines["lead time (run start → production)"]
    assert "1.17/week, 0.167/day 5 production change(s): canary=3, create=2" in lines["deployment frequency"]
    assert "40.0% 2 rollback(s) / 5 change(s)" in lines["rollback rate"]
    assert "50.0% 1 of 2; unmonitored: fraud" in lines["production models monitored"]
    assert "median 9h 00m 1 of 1 alert(s) followed by a promotion" in lines["drift alert → next promotion"]
    # the lists under the summary
    assert "registered without a run" in out and "1d 0h" in out and "5h 00m" in out
    assert "canary controller" in out and "complaints from support" in out and "churn/2 churn/1" in " ".join(
        out.split())
    assert f"v3 at {iso(T0 + 49 * HOUR)}" in out


def test_a_window_and_a_model(history: Path) -> None:
    args = ("metrics", "delivery", "--since", iso(T0), "--until", iso(T0 + 45 * HOUR), "--model", "fraud")
    report = strict_json(cli(*args, "--json").stdout)
    assert (report["since"], report["until"], report["model"]) == (T0, T0 + 45 * HOUR, "fraud")
    assert [v["version"] for v in report["lead_time"]["versions"]] == [1]
    assert report["lead_time"]["median_s"] is None
    out = cli(*args).stdout
    # A metric without data shows a dash and the reason, never a 0.
    assert "— no version that started serving production has a run with a start time" in " ".join(out.split())
    assert f"— no drift alerts fired of model 'fraud' between {iso(T0)}" in " ".join(out.split())
    assert "0.0% 0 rollback(s) / 1 change(s)" in " ".join(out.split())  # measured, so a real 0
    assert "0.0% 0 of 1; unmonitored: fraud" in " ".join(out.split())


def test_bad_input_exits_with_its_code_and_changes_nothing(history: Path) -> None:
    before = dump(history)
    for args, code, message in [
        (("--since", "yesterday"), 2, "since must be a datetime, an ISO 8601 time"),
        (("--since", iso(END + HOUR)), 2, "is in the future"),
        (("--until", "2999-01-01"), 2, "until (2999-01-01T00:00:00Z) is in the future"),
        (("--since", "2024-03-05", "--until", "2024-03-04"), 2, "is after until"),
        (("--model", "nope"), 3, "no registered model named 'nope'"),
        (("--model", "a@b"), 2, "must not contain"),
    ]:
        result = cli("metrics", "delivery", *args, code=code)
        assert message in result.stderr, (args, result.stderr)
    assert dump(history) == before


def test_through_a_server(history: Path) -> None:
    local = strict_json(cli("metrics", "delivery", "--since", "3d", "--json").stdout)
    with LiveServer(create_app(Client())) as server:
        url = ("--uri", server.url)
        assert strict_json(cli(*url, "metrics", "delivery", "--since", "3d", "--json").stdout) == local
        assert "40.0%" in cli(*url, "metrics", "delivery", "--since", "3d").stdout
        assert "no registered model named 'nope'" in cli(*url, "metrics", "delivery", "--model", "nope",
                                                         code=3).stderr
