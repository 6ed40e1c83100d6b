"""The monitors' dashboard pages through FastAPI's TestClient (SQLite and PostgreSQL), and in a real browser.

`bc-api` answers with a logistic regression on the breast-cancer data (registered with its training data, so
its contract keeps a profile). The monitor `bc-drift` evaluates three hour windows of logged traffic: ordinary
rows with labels, ordinary rows without, then rows whose first 20 features are scaled by 1.5 and whose
'mean texture' has nulls, with labels: the dataset drifts, 'mean texture' breaks the contract (an error) and
the shifted features leave the training range (warnings). `idle` has never run; `quiet` ran once over a
window without traffic. The pages must show all of it, and never a 500.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from arsenale.config import get_settings
from arsenale.errors import BackendUnavailable
from arsenale.monitoring.alerts import AlertEvent
from arsenale.monitoring.models import MonitorRun
from arsenale.platform import Client
from arsenale.server.dashboard import fmt_time, install
from arsenale.server.dashboard_monitoring import (
    categorical_bins,
    distribution,
    fmt_window,
    numeric_bins,
    top_features,
)
from arsenale.serving.inference_log import InferenceLog
from arsenale.tracking.models import now_ms
from tests.conftest import LiveServer
from tests.e2e import test_dashboard_browser as runs_pages
from tests.e2e.test_dashboard_browser import Tab, assert_charts_drawn
from tests.serving.conftest import Fitted, cancer, register, shared_artifacts, store  # noqa: F401  (fixtures)

MODEL, DEP, MON = "bc", "bc-api", "bc-drift"
HOUR = 3_600_000
SHIFTED = 20  # the first 20 of the 30 features drift in the newest window
EVIL = "<script>alert(1)</script>"


def log_window(deployment: str, model: str, rows: pd.DataFrame, predictions: Any, labels: Any,
               start: int) -> None:
    """Log `rows` one request each from `start` (ms), with their labels as feedback when given."""
    log = InferenceLog(get_settings().resolved_inference_log(), deployment, replica="t")
    for i, (record, p) in enumerate(zip(rows.to_dict(orient="records"), predictions)):
        log.log(request_id=f"r{start}-{i}", model=model, version=1, role="route", inputs=[record],
                outputs=[int(p)], latency_ms=1.0, timestamp_ms=start + i)
        if labels is not None:
            log.feedback(f"r{start}-{i}", int(labels[i]), timestamp_ms=start + i + 1)
    log.close()


@dataclass
class Scenario:
    client: Client
    shifted: pd.DataFrame  # the newest window's rows
    runs: list[MonitorRun] = field(default_factory=list)  # bc-drift's, oldest first


def seed_monitors(cancer: Fitted) -> Scenario:  # noqa: F811
    """The module docstring's store; ARSENALE_URI, ARSENALE_ARTIFACTS and ARSENALE_INFERENCE_LOG name it."""
    register(MODEL, cancer)
    settings = get_settings()
    client = Client(settings.resolved_uri(), artifacts=settings.resolved_artifacts(), actor="alice")
    client.deployments.create(DEP, f"{MODEL}/1")
    monitors = client.monitors
    monitors.create(MON, DEP, window="1h", schedule="*/10 * * * *")
    monitors.create("idle", DEP, window="90m")
    monitors.create("quiet", DEP, window="1h")

    X, y, model = cancer.X, cancer.y.to_numpy(), cancer.model
    start = now_ms() - 3 * HOUR
    calm, later = X.iloc[:200], X.iloc[200:400]
    shifted = later.copy()
    for column in list(X.columns)[:SHIFTED]:
        shifted[column] = shifted[column] * 1.5
    shifted.loc[shifted.index[:5], "mean texture"] = np.nan
    sc = Scenario(client, shifted)
    for i, (rows, labels) in enumerate([(calm, y[:200]), (later, None), (shifted, y[200:400])]):
        end = start + i * HOUR
        log_window(DEP, MODEL, rows, model.predict(X.loc[rows.index]), labels, end - 60_000)
        sc.runs.append(monitors.run(MON, now=end))
    monitors.run("quiet", now=start + 10 * HOUR)  # nothing was logged then
    return sc


def make_app(client: Any) -> FastAPI:
    app = FastAPI()
    app.state.client = client
    install(app)
    return app


@dataclass
class Site:
    http: TestClient
    sc: Scenario


@pytest.fixture
def site(store: Client, cancer: Fitted, tmp_path: Path,  # noqa: F811
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("ARSENALE_INFERENCE_LOG", str(tmp_path / "inference"))
    sc = seed_monitors(cancer)
    with TestClient(make_app(sc.client)) as http:
        yield Site(http, sc)


@pytest.fixture
def empty(store_uri: str, tmp_path: Path) -> Iterator[TestClient]:
    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="t")
    with TestClient(make_app(client)) as http:
        yield http


# ---- reading the pages -------------------------------------------------------------------------------------


def text_of(html: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def rows_of(html: str, table_id: str) -> list[str]:
    body = html.split(f'id="{table_id}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[^>]*>.*?</tr>", body, re.DOTALL)


def attr(row: str, name: str) -> str:
    m = re.search(rf'{name}="([^"]*)"', row)
    assert m, (name, row[:200])
    return htmllib.unescape(m.group(1))


def cell(row: str, cls: str) -> str:
    return text_of(re.split(rf'<td class="[^"]*\b{cls}\b[^"]*">', row, maxsplit=1)[1].split("</td>", 1)[0])


def chart(html: str, key: str) -> dict[str, Any]:
    m = re.search(rf'<figure class="chart" id="chart-{key}" data-timeseries="([^"]*)"', html)
    assert m, f"no chart {key}"
    return json.loads(htmllib.unescape(m.group(1)))  # type: ignore[no-any-return]


def by_label(spec: dict[str, Any]) -> dict[str, list[Any]]:
    return {s["label"]: s["values"] for s in spec["series"]}


def statistic(run: MonitorRun, feature: str) -> float:
    value = run.values[f"drift.{feature}.statistic"]
    assert value is not None
    return value


# ---- /monitors ---------------------------------------------------------------------------------------------


def test_list_shows_each_monitor_with_its_newest_window(site: Site) -> None:
    r = site.http.get("/monitors")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<a href="/monitors">Monitors</a>' in r.text  # the nav link
    rows = {attr(row, "data-monitor"): row for row in rows_of(r.text, "monitors-table")}
    assert list(rows) == [MON, "idle", "quiet"]
    newest = site.sc.runs[-1]
    drift = rows[MON]
    assert f'<a href="/monitors/{MON}">{MON}</a>' in drift
    assert f'<a href="/deployments/{DEP}">{DEP}</a>' in drift
    assert cell(drift, "window") == "1h" and cell(drift, "schedule") == "*/10 * * * *"
    assert cell(drift, "rows") == "200"
    assert cell(drift, "drift") == f"{100 * newest.values['drift_share']:.1f}% dataset drift"
    assert 'class="status drift-yes"' in drift
    assert cell(drift, "accuracy") == f"{100 * newest.values['accuracy']:.1f}%"  # type: ignore[operator]

    idle = rows["idle"]
    assert cell(idle, "window") == "90m" and cell(idle, "schedule") == "on demand"
    assert cell(idle, "newest") == "no runs yet" and cell(idle, "accuracy") == "—"
    quiet = rows["quiet"]
    assert cell(quiet, "rows") == "0" and cell(quiet, "drift") == "0.0% no drift"
    assert 'class="status drift-no"' in quiet and cell(quiet, "accuracy") == "—"


def test_list_without_monitors_shows_a_hint(empty: TestClient) -> None:
    r = empty.get("/monitors")
    assert r.status_code == 200 and "No monitors yet" in r.text


# ---- /monitors/{name} --------------------------------------------------------------------------------------


def test_charts_carry_drift_share_feature_statistics_quality_and_accuracy(site: Site) -> None:
    html = site.http.get(f"/monitors/{MON}").text
    runs = site.sc.runs
    x = [r.window_end / 1000 for r in runs]

    share = chart(html, "drift_share")
    assert share["x"] == x and share["unit"] == "%" and (share["min"], share["max"]) == (0, 100)
    shares = [100 * (r.values["drift_share"] or 0) for r in runs]
    assert by_label(share)["drift share"] == [pytest.approx(v) for v in shares]
    assert by_label(share)["dataset drift threshold"] == [50.0, 50.0, 50.0]
    assert by_label(share)["drift share"][-1] == pytest.approx(100 * SHIFTED / 30)

    features = chart(html, "features")
    assert features["x"] == x and len(features["series"]) == 10
    names = [s["label"] for s in features["series"]]
    newest = {k[len("drift."):-len(".statistic")]: v or 0 for k, v in runs[-1].values.items()
              if k.startswith("drift.")}
    expected = sorted(newest, key=lambda k: (-newest[k], k))[:10]
    assert names == expected  # the ten highest statistics of the newest window, highest first
    assert [s["colour"] for s in features["series"]] == list(range(10))
    first = names[0]
    assert by_label(features)[first] == [pytest.approx(statistic(r, first), abs=1e-6) for r in runs]

    quality = by_label(chart(html, "quality"))
    assert quality["errors"] == [0, 0, 1]  # the nulls in 'mean texture'
    assert quality["warnings"][0] == 0 and quality["warnings"][2] > 20

    accuracy = by_label(chart(html, "accuracy"))["accuracy"]
    assert accuracy[1] is None  # no labels in the second window: a gap
    assert accuracy[0] == pytest.approx(100 * runs[0].values["accuracy"])  # type: ignore[operator]
    assert accuracy[2] == pytest.approx(100 * runs[2].values["accuracy"])  # type: ignore[operator]
    assert "No accuracy yet" not in html


def test_the_newest_windows_features_quality_issues_and_recent_windows(site: Site) -> None:
    html = site.http.get(f"/monitors/{MON}").text
    facts = text_of(html.split('id="newest-summary"', 1)[1].split("</dl>", 1)[0])
    assert "Rows 200" in facts and f"Drifted features {SHIFTED} of 30" in facts
    warnings = int(site.sc.runs[-1].values["quality.warnings"] or 0)
    assert f"Quality 1 error, {warnings} warnings" in facts and "dataset drift" in facts

    rows = rows_of(html, "features-table")
    verdicts = [attr(row, "data-verdict") for row in rows]
    assert verdicts == ["drifted"] * SHIFTED + ["ok"] * (30 - SHIFTED)  # drifted first
    features = {attr(row, "data-feature"): row for row in rows}
    radius = features["mean radius"]
    assert cell(radius, "verdict") == "drifted" and cell(radius, "test") == "ks"
    assert cell(radius, "threshold") == "p < 0.05"
    assert cell(radius, "statistic").startswith(f"≈{statistic(site.sc.runs[-1], 'mean radius'):.4g} ± ")
    assert "200 current" in cell(radius, "notes") and "20-bin histogram" in cell(radius, "notes")
    assert cell(features["worst area"], "verdict") == "no drift"
    drawn = [attr(row, "data-feature") for row in rows if 'class="swatch"' in row]
    assert drawn == [s["label"] for s in chart(html, "features")["series"]]  # swatches match the chart
    assert 'href="/monitors/bc-drift?feature=mean+radius#distribution"' in radius

    issues = rows_of(html, "issues-table")
    first = issues[0]
    assert (attr(first, "data-severity"), attr(first, "data-kind")) == ("error", "nulls")
    assert "column 'mean texture': 5 null value(s)" in text_of(first)
    kinds = {(attr(i, "data-kind"), cell(i, "column")) for i in issues}
    assert ("out_of_range", "mean radius") in kinds and ("skew", "mean radius") in kinds
    assert all(attr(i, "data-severity") == "warning" for i in issues[1:])
    assert len(issues) == 1 + warnings

    recent = rows_of(html, "recent-table")
    assert [int(attr(r, "data-run")) for r in recent] == [r.id for r in reversed(site.sc.runs)]
    assert "dataset drift" in text_of(recent[0]) and "no drift" in text_of(recent[2])


def test_reference_and_current_distributions_of_a_chosen_feature(site: Site) -> None:
    html = site.http.get(f"/monitors/{MON}").text
    first = attr(rows_of(html, "features-table")[0], "data-feature")
    assert attr(html.split('id="dist-chart"', 1)[1], "data-feature") == first  # what moved most, by default

    page = site.http.get(f"/monitors/{MON}", params={"feature": "mean radius"}).text
    dist = page.split('id="distribution-body"', 1)[1].split("</section>", 1)[0]
    assert '<option value="mean radius" selected>mean radius (drifted)</option>' in dist
    bins = [[text_of(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in rows_of(dist, "dist-table")]
    assert bins[0][0] == "[6.981, 8.037)" and bins[-1][0] == "> 28.11"  # the contract's bins, then beyond
    assert bins[-1][1] == "0.0%"  # no training value lies above the training maximum, some current ones do
    above = int((site.sc.shifted["mean radius"] > 28.11).sum())
    assert above > 0 and bins[-1][2] == f"{100 * above / 200:.1f}%"
    axis = dist.split('class="dist-axis">', 1)[1].split("</div>", 1)[0]
    assert text_of(axis) == "6.981 > 28.11"  # under the first and the last bar
    assert sum(float(b[1].rstrip("%")) for b in bins) == pytest.approx(100, abs=0.5)
    assert sum(float(b[2].rstrip("%")) for b in bins) == pytest.approx(100, abs=0.5)
    assert "569 values" in text_of(dist) and "200 values" in text_of(dist)
    heights = re.findall(r'class="bar (ref|cur)" style="height: ([\d.]+)%"', dist)
    assert len(heights) == 2 * len(bins) and max(float(h) for _, h in heights) == 100.0

    # An htmx request (the feature picker, a feature's link) gets the fragment alone.
    frag = site.http.get(f"/monitors/{MON}", params={"feature": "mean texture"},
                         headers={"HX-Request": "true"})
    assert frag.status_code == 200 and "<html" not in frag.text and 'id="monitors-table"' not in frag.text
    assert 'data-feature="mean texture"' in frag.text
    assert "5 null current value(s) left out" in frag.text and "195 values" in text_of(frag.text)

    # A feature the newest window did not test falls back to the default instead of failing.
    other = site.http.get(f"/monitors/{MON}", params={"feature": "no such feature"})
    assert other.status_code == 200 and f'data-feature="{first}"' in other.text


def test_a_monitor_without_runs_and_one_with_an_empty_window(site: Site) -> None:
    idle = site.http.get("/monitors/idle")
    assert idle.status_code == 200
    assert 'id="no-runs"' in idle.text and 'ars.Client().monitors.run("idle")' in htmllib.unescape(idle.text)
    assert 'class="chart"' not in idle.text and 'id="features-table"' not in idle.text
    assert 'id="alerts"' in idle.text
    assert site.http.get("/monitors/idle", headers={"HX-Request": "true"}).status_code == 200

    quiet = site.http.get("/monitors/quiet")
    assert quiet.status_code == 200
    verdicts = {attr(row, "data-verdict") for row in rows_of(quiet.text, "features-table")}
    assert verdicts == {"skipped"}
    dist = text_of(quiet.text.split('id="distribution-body"', 1)[1].split("</section>", 1)[0])
    assert "the window logged no rows" in dist and "current 0 values" in dist
    assert "empty window" in text_of(quiet.text)  # the quality check's issue
    run = site.sc.client.monitors.runs("quiet")[0]
    share = chart(quiet.text, "drift_share")  # one window: the axis spans it from its start (with no value)
    assert share["x"] == [run.window_start / 1000, run.window_end / 1000]
    assert by_label(share)["drift share"] == [None, 0.0]
    assert chart(quiet.text, "features")["series"] == []  # no feature was ever tested: no line
    assert 'id="no-accuracy"' in quiet.text


def test_the_report_file_draws_each_features_distributions(site: Site) -> None:
    r = site.http.get(f"/monitors/{MON}/report.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in r.text and "<script" not in r.text
    assert "mean radius" in r.text and "no distribution: pass reference=" not in r.text
    assert f"{MON}: the window ending" in r.text
    assert site.http.get("/monitors/idle/report.html").status_code == 404


def test_alert_notifications_link_to_the_monitor(empty: TestClient) -> None:
    r = empty.get(f"/monitoring/{MON}", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == f"/monitors/{MON}"


# ---- alerts ------------------------------------------------------------------------------------------------


class FakeAlerts:
    """What the pages read of `client.monitors.alerts`, recording how they asked."""

    def __init__(self, events: list[AlertEvent], fail: Exception | None = None) -> None:
        self.events, self.fail = events, fail
        self.calls: list[dict[str, Any]] = []

    def list_alerts(self, monitor: str | None = None, status: str | None = None,
                    limit: int = 100) -> list[AlertEvent]:
        self.calls.append({"monitor": monitor, "status": status, "limit": limit})
        if self.fail is not None:
            raise self.fail
        return [e for e in self.events if e.monitor == monitor and status in (None, e.status)][:limit]


class Monitors:
    """The client's monitor service with `alerts` present (a fake) or absent, whatever the real one has."""

    def __init__(self, inner: Any, alerts: FakeAlerts | None) -> None:
        self._inner, self._alerts = inner, alerts

    def __getattr__(self, name: str) -> Any:
        if name == "alerts":
            if self._alerts is None:
                raise AttributeError(name)
            return self._alerts
        return getattr(self._inner, name)


class ClientWith:
    def __init__(self, inner: Client, monitors: Monitors) -> None:
        self._inner, self.monitors = inner, monitors

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def event(rule: str, status: str, value: float, starts: int, ends: int | None = None) -> AlertEvent:
    return AlertEvent(status=status, rule=rule, monitor=MON, severity="critical",  # type: ignore[arg-type]
                      labels={}, condition="drift_share > 0.3 for 2 windows", value=value,
                      starts_at_ms=starts, ends_at_ms=ends, fingerprint="0" * 16)


def test_alerts_of_the_monitors_alert_rules(site: Site) -> None:
    """With the platform's alert service: a rule on drift share fires on the newest window."""
    alerts = site.sc.client.monitors.alerts
    alerts.add_rule(MON, "drift_share > 0.5", name="drift-high", severity="critical")
    alerts.add_rule(MON, "quality.errors >= 1 for 2 windows", name="broken-input")
    fired = [a for run in site.sc.runs for a in alerts.evaluate(run)]  # the windows in order, as run() does
    assert [(a.rule, a.status) for a in fired] == [("drift-high", "firing")]

    listing = site.http.get("/monitors").text
    rows = {attr(row, "data-monitor"): row for row in rows_of(listing, "monitors-table")}
    assert cell(rows[MON], "alerts") == "1" and cell(rows["idle"], "alerts") == "0"
    page = site.http.get(f"/monitors/{MON}").text
    assert text_of(page.split('id="firing-badge">', 1)[1].split("<", 1)[0]) == "1 firing"
    [row] = rows_of(page, "alerts-table")
    newest = site.sc.runs[-1]
    assert attr(row, "data-status") == "firing"
    share = newest.values["drift_share"] or 0
    since = fmt_time(newest.window_end)
    assert text_of(row) == f"firing drift-high critical drift_share > 0.5 {share:.4g} {since} — —"


def test_alerts_panel_and_the_firing_count(site: Site) -> None:
    t = site.sc.runs[-1].window_end
    alerts = FakeAlerts([event("drift-high", "firing", 0.667, t), event(EVIL, "resolved", 0.1, t - HOUR, t)])
    client = ClientWith(site.sc.client, Monitors(site.sc.client.monitors, alerts))
    with TestClient(make_app(client)) as http:
        listing = http.get("/monitors").text
        assert "Firing alerts" in listing
        rows = {attr(row, "data-monitor"): row for row in rows_of(listing, "monitors-table")}
        assert cell(rows[MON], "alerts") == "1" and cell(rows["idle"], "alerts") == "0"
        assert {"monitor": MON, "status": "firing", "limit": 100} in alerts.calls

        page = http.get(f"/monitors/{MON}").text
        assert text_of(page.split('id="firing-badge">', 1)[1].split("<", 1)[0]) == "1 firing"
        shown = [text_of(r) for r in rows_of(page, "alerts-table")]
        assert shown[0].startswith("firing drift-high critical drift_share > 0.3 for 2 windows 0.667")
        assert shown[1].startswith(f"resolved {EVIL} critical")
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    broken = FakeAlerts([], fail=BackendUnavailable("the alert store is down"))
    with TestClient(make_app(ClientWith(site.sc.client, Monitors(site.sc.client.monitors, broken)))) as http:
        page = http.get(f"/monitors/{MON}")
        assert page.status_code == 200 and "the alert store is down" in page.text
        assert http.get("/monitors").status_code == 200

    without = ClientWith(site.sc.client, Monitors(site.sc.client.monitors, None))
    with TestClient(make_app(without)) as http:
        assert "Firing alerts" not in http.get("/monitors").text
        assert "Alert rules are not available" in http.get(f"/monitors/{MON}").text


# ---- errors and escaping -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/monitors/nope", "/monitors/a@b", "/monitors/%20padded",
                                  "/monitors/" + "x" * 200, "/monitors/%3Cscript%3Ealert(1)",
                                  "/monitors/nope/report.html", "/monitors/%3Cb%3E/report.html"])
def test_unknown_and_invalid_names_are_a_404_page(empty: TestClient, path: str) -> None:
    r = empty.get(path)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "Not found" in r.text and 'role="alert"' in r.text
    assert "<script>" not in r.text and "<b>" not in r.text


def test_feature_names_from_data_are_escaped(store: Client, tmp_path: Path,  # noqa: F811
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A feature may be called anything; its name reaches the table, the picker, the charts and the issues."""
    from sklearn.linear_model import LogisticRegression

    import arsenale as ars

    monkeypatch.setenv("ARSENALE_INFERENCE_LOG", str(tmp_path / "inference"))
    rng = np.random.default_rng(3)
    X = pd.DataFrame({EVIL: rng.normal(0, 1, 300), "size": rng.normal(10, 2, 300)})
    y = (X[EVIL] > 0).astype(int)
    ars.register_model("evil", LogisticRegression().fit(X, y), signature_from=X, reference=X, labels=y)
    settings = get_settings()
    client = Client(settings.resolved_uri(), artifacts=settings.resolved_artifacts(), actor="alice")
    client.deployments.create("evil-api", "evil/1")
    client.monitors.create("evil-drift", "evil-api")
    end = now_ms()
    shifted = X.iloc[:200].assign(**{EVIL: X[EVIL].iloc[:200] + 5})
    log_window("evil-api", "evil", shifted, [0] * 200, None, end - 60_000)
    run = client.monitors.run("evil-drift", now=end)
    assert run.values["dataset_drift"] == 1.0
    with TestClient(make_app(client)) as http:
        pages = [http.get("/monitors/evil-drift"),
                 http.get("/monitors/evil-drift", params={"feature": EVIL}, headers={"HX-Request": "true"})]
        for r in pages:
            assert r.status_code == 200
            assert "<script>alert" not in r.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
        html = pages[0].text
        assert attr(rows_of(html, "features-table")[0], "data-feature") == EVIL
        assert EVIL in [s["label"] for s in chart(html, "features")["series"]]
        assert "out_of_range" in [attr(i, "data-kind") for i in rows_of(html, "issues-table")]


# ---- shaping -----------------------------------------------------------------------------------------------


def test_window_spellings() -> None:
    assert [fmt_window(s) for s in (3600, 5400, 86400, 600, 90, 1)] == ["1h", "90m", "1d", "10m", "90s", "1s"]


def test_numeric_bins_follow_the_reference_grid_with_tails() -> None:
    bins, placed = numeric_bins([0.0, 1.0, 2.0], [3, 1], np.array([-1.0, 0.5, 2.0, 5.0, 6.0]))
    assert placed == 5
    assert [(b.label, b.reference, b.current) for b in bins] == [
        ("< 0", 0.0, 0.2), ("[0, 1)", 0.75, 0.2), ("[1, 2]", 0.25, 0.2), ("> 2", 0.0, 0.4)]
    inside, _ = numeric_bins([0.0, 1.0, 2.0], [3, 1], np.array([], dtype=float))
    assert [(b.label, b.current) for b in inside] == [("[0, 1)", None), ("[1, 2]", None)]


def test_categorical_bins_keep_the_top_categories_and_fold_unknown_ones() -> None:
    bins = categorical_bins({"a": 6, "b": 2, "__other__": 2}, {"a": 1, "c": 3}, "__other__")
    assert [(b.label, b.reference, b.current) for b in bins] == [
        ("__other__", 0.2, 0.75), ("a", 0.6, 0.25), ("b", 0.2, 0.0)]
    many = categorical_bins({f"k{i:02d}": 20 - i for i in range(15)}, {}, None)
    assert len(many) == 11 and many[-1].label == "5 others" and many[-1].current is None
    assert sum(b.reference or 0 for b in many) == pytest.approx(1.0)


def test_distribution_of_a_categorical_feature_and_of_one_without_a_reference() -> None:
    from arsenale.registry.contract import FeatureProfile

    profile = FeatureProfile(name="color", kind="categorical", count=10, frequencies={"red": 6, "blue": 4})
    dist = distribution("color", "categorical", profile, pd.Series(["red", None, "green", "green"]))
    assert [(b.label, b.reference, b.current) for b in dist.bins] == [
        ("green", 0.0, pytest.approx(2 / 3)), ("red", 0.6, pytest.approx(1 / 3)), ("blue", 0.4, 0.0)]
    assert (dist.reference_values, dist.current_values) == (10, 3)
    assert dist.notes == ["1 null current value(s) left out"] and dist.axis is None

    bare = distribution("size", "numeric", None, pd.Series([1.0, float("inf"), "x"], dtype=object))
    assert bare.bins == [] and bare.current_values == 1
    assert bare.notes == ["the contract keeps no reference distribution of this feature",
                          "1 current value(s) are not numbers", "1 infinite current value(s) left out"]


def test_top_features_rank_by_the_most_recent_statistic_not_the_newest_window() -> None:
    stats = {"a": [0.9, 0.1, None], "b": [0.1, 0.5, None], "c": [None, None, None], "d": [0.2, 0.3, 0.05]}
    assert top_features(stats, 3) == ["b", "a", "d"]


# ---- in a real browser -------------------------------------------------------------------------------------


@dataclass
class LiveSite:
    base: str
    sc: Scenario


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, cancer: Fitted) -> Iterator[LiveSite]:  # noqa: F811
    import os

    from arsenale.server.app import create_app

    root = tmp_path_factory.mktemp("monitors")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse isolation fixture has not run yet
        for key in [k for k in os.environ if k.startswith("ARSENALE_")]:
            mp.delenv(key)
        mp.setenv("ARSENALE_HOME", str(root / ".arsenale"))
        mp.setenv("ARSENALE_URI", f"sqlite:///{root / 'arsenale.db'}")
        mp.setenv("ARSENALE_ARTIFACTS", str(root / "artifacts"))
        mp.setenv("ARSENALE_INFERENCE_LOG", str(root / "inference"))
        sc = seed_monitors(cancer)
    with LiveServer(create_app(sc.client)) as server:
        yield LiveSite(server.url, sc)


browser = runs_pages.browser  # the system Chromium, and a tab that records console errors
tab = runs_pages.tab


@pytest.mark.browser
def test_in_a_browser_the_charts_draw_and_a_feature_can_be_picked(live: LiveSite, tab: Tab) -> None:
    page: Any = tab.page
    page.goto(f"{live.base}/monitors")
    page.click(f'#monitors-table a:text-is("{MON}")')
    page.wait_for_url(f"**/monitors/{MON}")

    # drift share, feature statistics, quality issues and accuracy over the three windows
    assert_charts_drawn(page, expected=4)
    legend = page.locator("#chart-drift_share .u-legend").inner_text()
    assert "drift share" in legend and "dataset drift threshold" in legend

    # the per-feature table: drifted features first, 'mean radius' among them
    drifted = page.locator('#features-table tbody tr[data-verdict="drifted"]')
    assert drifted.count() == SHIFTED
    radius = page.locator('#features-table tbody tr[data-feature="mean radius"]')
    assert "drifted" in radius.locator("td.verdict").inner_text()

    # picking a feature swaps its distributions in place (htmx) and the address follows
    page.select_option("#feature-select", "mean radius")
    page.wait_for_selector('#dist-chart[data-feature="mean radius"]')
    assert parse_qs(urlsplit(page.url).query) == {"feature": ["mean radius"]}
    assert page.locator("#dist-chart .dist-bin").count() > 20
    assert page.locator("header.topbar").count() == 1  # only the fragment was replaced
    assert page.locator("#features-table tbody tr").count() == 30

    # so does a feature's link in the table
    page.click('#features-table a:text-is("mean texture")')
    page.wait_for_selector('#dist-chart[data-feature="mean texture"]')
    assert page.locator("#feature-select").input_value() == "mean texture"
    assert tab.errors == []
