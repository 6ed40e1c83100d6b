"""The deployments' dashboard pages through FastAPI's TestClient, on SQLite and PostgreSQL.

Two logistic regressions on the breast-cancer data are registered with `ars.register_model`; `cancer-api`
answers with v1, alice starts a canary of v2, replicas report a few minutes of traffic for both versions,
and the canary controller records a wait and then an advance (to 50%). `cancer-mirror` answers with v1 and
mirrors its traffic to v2 as a shadow. The pages must show all of it, and the Rollback button must undo the
canary as one revision that the audit trail records.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import arsenale as ars
from arsenale.platform import Client
from arsenale.server.dashboard import install
from arsenale.server.dashboard_deployments import split_chart, timeline_charts, version_colours
from arsenale.serving.models import LATENCY_BUCKETS_MS, Decision, TimelinePoint, VersionStats
from arsenale.tracking.models import now_ms

MODEL = "breast-cancer"
DEP = "cancer-api"
MIRROR = "cancer-mirror"
MINUTES = 8  # windows of traffic recorded, one a minute, ending a minute ago
ADVANCE_REASON = "canary error rate 1.0% <= 2% & p99 75 ms < 250 ms over 800 requests"
WAIT_REASON = "only 120 canary requests; 200 are needed to judge a step"
EVIL = "<script>alert(1)</script>"


def latency(**at: int) -> list[int]:
    """Latency counts with `at["ms20"] = n` requests in the bucket whose upper bound is 20 ms."""
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for key, n in at.items():
        counts[LATENCY_BUCKETS_MS.index(float(key[2:]))] += n
    return counts


def traffic(minute: int) -> dict[int, tuple[int, int, list[int]]]:
    """Requests, errors and latency counts per version of MODEL in the window `minute` (0 = oldest)."""
    base = 900 + 10 * minute
    return {1: (base, 2, latency(ms20=base - 10, ms30=10)),  # p99 30 ms
            2: (100, 1, latency(ms20=94, ms75=6))}  # p99 75 ms


@dataclass
class Scenario:
    uri: str
    artifacts: str
    alice: Client
    start: int  # the first window's start, ms since the epoch

    def client(self, actor: str) -> Client:
        return Client(self.uri, artifacts=self.artifacts, actor=actor)


def register_two_versions() -> None:
    """v1 (C=0.05) and v2 (C=1.0) of MODEL, trained in tracked runs, through the fluent API."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X[["mean radius", "mean texture", "mean smoothness", "worst concavity"]]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    for c in (0.05, 1.0):
        with ars.start_run(experiment="breast-cancer", run_name=f"logreg-C{c}", params={"C": c}):
            model = LogisticRegression(C=c, max_iter=5000).fit(X_train, y_train)
            acc = float(accuracy_score(y_test, model.predict(X_test)))
            ars.log_metrics({"accuracy": acc})
            ars.register_model(MODEL, model, signature_from=X_train, labels=y_train,
                               metrics={"accuracy": acc}, description=f"logistic regression, C={c}")


def seed_deployments(uri: str, artifacts: str) -> Scenario:
    """The scenario of the module docstring, in the store at `uri` (the settings must name it too)."""
    register_two_versions()
    alice = Client(uri, artifacts=artifacts, actor="alice")
    controller = Client(uri, artifacts=artifacts, actor="canary-controller").deployments
    api = alice.deployments
    api.create(DEP, f"{MODEL}/1", description="breast cancer screening", reason="first release")
    api.start_canary(DEP, f"{MODEL}/2", steps=[10, 50, 100], interval_s=120, max_error_rate=0.02,
                     max_p99_ms=250, min_requests=200, reason="C=1.0 wins offline accuracy")
    api.create(MIRROR, f"{MODEL}/1", reason="mirror for offline comparison")
    api.shadow(MIRROR, [f"{MODEL}/2"], reason="watch v2 on live traffic")

    start = (now_ms() // 60_000 - MINUTES) * 60_000
    for m in range(MINUTES):
        t = start + m * 60_000
        rows = [VersionStats(model=MODEL, version=v, window_start=t, requests=n, errors=e, latency_counts=lat,
                             latency_sum_ms=20.0 * n) for v, (n, e, lat) in traffic(m).items()]
        for replica in ("replica-a", "replica-b"):  # two replicas, each serving half
            first = replica == "replica-a"
            half = [r.model_copy(update={"requests": r.requests // 2, "errors": r.errors if first else 0,
                                         "latency_counts": [c // 2 for c in r.latency_counts]})
                    for r in rows]
            controller.record_stats(DEP, replica, half)
        mirror = [VersionStats(model=MODEL, version=1, window_start=t, requests=50, errors=0,
                               latency_counts=latency(ms10=50), latency_sum_ms=400.0),
                  VersionStats(model=MODEL, version=2, role="shadow", window_start=t, requests=50, errors=0,
                               latency_counts=latency(ms15=50), latency_sum_ms=600.0)]
        controller.record_stats(MIRROR, "replica-a", mirror)

    def decide(action: str, reason: str, evidence: dict[str, Any]) -> None:
        revision = controller.get(DEP).revision
        decision = Decision(deployment=DEP, timestamp=now_ms(), action=action,  # type: ignore[arg-type]
                            step=10, reason=reason, evidence=evidence)
        controller.apply_decision(DEP, decision, revision)

    decide("wait", WAIT_REASON, {"canary_requests": 120, "min_requests": 200})
    decide("advance", ADVANCE_REASON, {"canary_requests": 800, "canary_error_rate": 0.01,
                                       "baseline_error_rate": 0.0022, "p_value": 0.41, "canary_p99_ms": 75.0,
                                       "baseline_p99_ms": 30.0, "tests": {"errors": "fisher"}})
    return Scenario(uri, artifacts, alice, start)


@dataclass
class Site:
    http: TestClient
    sc: Scenario


def make_app(client: Client) -> FastAPI:
    app = FastAPI()
    app.state.client = client
    install(app)
    return app


@pytest.fixture
def site(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    artifacts = str(tmp_path / "artifacts")
    monkeypatch.setenv("ARSENALE_URI", store_uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", artifacts)
    sc = seed_deployments(store_uri, artifacts)
    with TestClient(make_app(sc.alice)) as http:
        yield Site(http, sc)


@pytest.fixture
def empty(store_uri: str, tmp_path: Path) -> Iterator[TestClient]:
    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"), actor="t")
    with TestClient(make_app(client)) as http:
        yield http


def text_of(html: str) -> str:
    """The text with tags dropped and whitespace collapsed, for reading sentences."""
    text = " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())
    return re.sub(r" ([,:.;])(?=\s|$)", r"\1", text)  # a tag's place before punctuation is no space


def cell(row: str, cls: str) -> str:
    """The text of the cell of class `cls` in a table row."""
    return text_of(row.split(f'<td class="{cls}">', 1)[1].split("</td>", 1)[0])


def section(html: str, ident: str) -> str:
    return html.split(f'id="{ident}"', 1)[1].split("</section>", 1)[0]


def rows_of(html: str, table_id: str) -> list[str]:
    body = html.split(f'id="{table_id}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.DOTALL)


def chart(html: str, key: str) -> dict[str, Any]:
    """The data a chart carries in its data-timeseries attribute."""
    m = re.search(rf'<figure class="chart" id="chart-{key}" data-timeseries="([^"]*)"', html)
    assert m, f"no chart {key}"
    return json.loads(htmllib.unescape(m.group(1)))  # type: ignore[no-any-return]


def by_label(spec: dict[str, Any]) -> dict[str, list[Any]]:
    return {s["label"]: s["values"] for s in spec["series"]}


def v(n: int) -> str:
    return f'href="/models/{MODEL}/versions/{n}"'


# ---- /deployments ------------------------------------------------------------------------------------------


def test_list_shows_who_answers_shadows_canary_revision_and_last_change(site: Site) -> None:
    r = site.http.get("/deployments")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<a href="/deployments">Deployments</a>' in r.text  # the nav link
    rows = {re.search(r'data-deployment="([^"]+)"', row).group(1): row  # type: ignore[union-attr]
            for row in re.findall(r"<tr data-deployment=[^>]*>.*?</tr>", r.text, re.DOTALL)}
    assert list(rows) == [DEP, MIRROR]  # by name
    api, mirror = rows[DEP], rows[MIRROR]
    assert f'<a href="/deployments/{DEP}">{DEP}</a>' in api
    assert "breast-cancer v1 50% breast-cancer v2 50%" in cell(api, "routes")
    assert v(1) in api and v(2) in api
    canary = cell(api, "canary")
    assert canary == "running breast-cancer v2 step 2 of 3: 50% of traffic"
    assert '<td class="num">3</td>' in api
    assert "advance by canary-controller" in text_of(api)

    assert cell(mirror, "routes") == "breast-cancer v1 100%"
    assert cell(mirror, "shadows") == "breast-cancer v2"
    assert v(2) in mirror.split('class="shadows"')[1]
    assert "shadow by alice" in text_of(mirror)


def test_list_without_deployments_shows_a_hint(empty: TestClient) -> None:
    r = empty.get("/deployments")
    assert r.status_code == 200 and "No deployments yet" in r.text


# ---- /deployments/{name}: the policy -----------------------------------------------------------------------


def test_detail_shows_routes_with_shares_shadows_and_the_canary_plan(site: Site) -> None:
    r = site.http.get(f"/deployments/{DEP}")
    assert r.status_code == 200
    html = r.text
    routes = [text_of(row) for row in rows_of(html, "routes-table")]
    assert routes == ["breast-cancer v1 50%", "breast-cancer v2 50%"]
    assert f'<a class="version-link" {v(1)} title="models:/{MODEL}/1">{MODEL} v1</a>' in html
    assert 'style="width: 50%"' in html
    assert "No shadows" in section(html, "policy")
    assert "none: each request is routed at random by share" in text_of(html)

    canary = section(html, "canary")
    said = "breast-cancer v2 against the baseline breast-cancer v1: step 2 of 3, 50% of traffic"
    assert said in text_of(canary)
    steps = re.findall(r'<li class="step step-(\w+)" data-step="([\d.]+)"', canary)
    assert steps == [("done", "10"), ("current", "50"), ("todo", "100")]
    assert 'role="progressbar"' in canary and 'aria-valuenow="1"' in canary and 'aria-valuemax="3"' in canary
    thresholds = text_of(canary.split('id="canary-thresholds"')[1])
    for fact in ("Maximum error rate 2%", "Maximum p99 latency 250 ms", "before a step is judged 200",
                 "Minimum time at each step 120 s", "Significance level (α) 0.05"):
        assert fact in thresholds, thresholds

    mirror = site.http.get(f"/deployments/{MIRROR}").text
    assert [text_of(row) for row in rows_of(mirror, "routes-table")] == ["breast-cancer v1 100%"]
    shadows = mirror.split('id="shadows"')[1].split("</ul>")[0]
    assert v(2) in shadows and "never answers" in shadows
    assert 'id="canary"' not in mirror


def test_charts_carry_one_series_per_version_over_the_last_hour(site: Site) -> None:
    html = site.http.get(f"/deployments/{DEP}").text
    requests, errors, p99 = chart(html, "requests"), chart(html, "error_rate"), chart(html, "p99")
    for spec in (requests, errors, p99):
        assert [s["label"] for s in spec["series"]] == ["breast-cancer v1", "breast-cancer v2"]
        assert [s["colour"] for s in spec["series"]] == [0, 1]
        assert len(spec["x"]) == 60 and spec["x"] == sorted(spec["x"])
        assert spec["x"][1] - spec["x"][0] == 60
    # the recorded windows, summed over both replicas, one bucket each; other buckets have no traffic
    expected = {1: [traffic(m)[1][0] for m in range(MINUTES)], 2: [traffic(m)[2][0] for m in range(MINUTES)]}
    counts = by_label(requests)
    for version, values in expected.items():
        served = [n for n in counts[f"breast-cancer v{version}"] if n]
        assert served == values
        assert sum(counts[f"breast-cancer v{version}"]) == sum(values)
    first = counts["breast-cancer v1"].index(expected[1][0])
    start = site.sc.start / 1000
    assert start - 60 < requests["x"][first] <= start  # buckets align to `since`, windows to the minute
    rates = by_label(errors)
    assert rates["breast-cancer v2"][first] == pytest.approx(1.0)  # 1 of 100
    assert rates["breast-cancer v1"][first] == pytest.approx(100 * 2 / 900, abs=1e-3)
    assert rates["breast-cancer v1"][0] is None  # no traffic: a gap, not 0%
    lat = by_label(p99)
    assert {x for x in lat["breast-cancer v1"] if x is not None} == {30.0}
    assert {x for x in lat["breast-cancer v2"] if x is not None} == {75.0}
    assert errors["unit"] == "%" and p99["unit"] == " ms"

    split = chart(html, "split")
    assert split["kind"] == "step" and split["revisions"] == [1, 2, 3] and len(split["x"]) == 4
    assert by_label(split) == {"breast-cancer v1": [100, 90, 50, 50], "breast-cancer v2": [0, 10, 50, 50]}

    mirror = site.http.get(f"/deployments/{MIRROR}").text
    labels = [s["label"] for s in chart(mirror, "requests")["series"]]
    assert labels == ["breast-cancer v1", "breast-cancer v2 (shadow)"]
    assert [s["dash"] for s in chart(mirror, "requests")["series"]] == [False, True]
    assert by_label(chart(mirror, "split")) == {"breast-cancer v1": [100, 100, 100]}


def test_decisions_show_reasons_and_evidence(site: Site) -> None:
    html = site.http.get(f"/deployments/{DEP}").text
    rows = rows_of(html, "decisions-table")
    actions = [re.findall(r'class="decision decision-(\w+)"', row) for row in rows]
    assert actions == [["advance"], ["wait"]]
    advance, wait = rows
    # the reason's special characters are escaped, and read back as written
    assert htmllib.escape(ADVANCE_REASON, quote=False) in advance and "<= 2%" not in advance
    assert ADVANCE_REASON in text_of(advance)
    assert WAIT_REASON in text_of(wait)
    evidence = text_of(advance.split('class="evidence"')[1])
    for fact in ("canary_requests 800", "canary_error_rate 0.01", "p_value 0.41", "canary_p99_ms 75",
                 'tests {"errors": "fisher"}'):
        assert fact in evidence, evidence
    assert '<td class="num">10%</td>' in advance


def test_revision_history_says_who_did_what_when_and_why(site: Site) -> None:
    html = site.http.get(f"/deployments/{DEP}").text
    rows = [text_of(row) for row in rows_of(html, "revisions-table")]
    assert len(rows) == 3
    assert re.fullmatch(r"3 \S+ \S+ canary-controller advance breast-cancer v1 50%, breast-cancer v2 50% "
                        + re.escape(ADVANCE_REASON), rows[0]), rows[0]
    assert rows[1].endswith("alice canary breast-cancer v1 90%, breast-cancer v2 10% "
                            "C=1.0 wins offline accuracy")
    assert rows[2].endswith("alice create breast-cancer v1 100% first release")
    mirror_page = site.http.get(f"/deployments/{MIRROR}").text
    mirror = [text_of(row) for row in rows_of(mirror_page, "revisions-table")]
    assert "shadows breast-cancer v2" in mirror[0] and "watch v2 on live traffic" in mirror[0]


# ---- rollback ----------------------------------------------------------------------------------------------


def test_rollback_undoes_the_canary_redirects_and_is_audited(site: Site) -> None:
    page = site.http.get(f"/deployments/{DEP}").text
    form = re.search(r'<form method="post" action="([^"]+)" class="rollback-form"\s+data-confirm="([^"]+)"',
                     page)
    assert form and form.group(1) == f"/deployments/{DEP}/rollback" and "revision 3" in form.group(2)

    r = site.http.post(f"/deployments/{DEP}/rollback", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/deployments/{DEP}?rolled_back=4"
    html = site.http.get(r.headers["location"]).text
    notice = text_of(html.split('id="rollback-notice">')[1].split("</p>")[0])
    assert "revision 4 restored the policy of revision 1, by alice" in notice
    assert [text_of(row) for row in rows_of(html, "routes-table")] == ["breast-cancer v1 100%"]
    assert 'class="count" title="the policy\'s revision">revision 4<' in html.replace("&#39;", "'")
    top = text_of(rows_of(html, "revisions-table")[0])
    assert top.startswith("4 ")
    assert "alice rollback to r1 breast-cancer v1 100% rolled back from the dashboard" in top
    dep = site.sc.alice.deployments.get(DEP)
    assert dep.revision == 4 and [(r.key, r.weight) for r in dep.policy.routes] == [(f"{MODEL}/1", 100)]

    audit = site.sc.alice.audit.entries(entity_type="deployment", entity_id=DEP, action="deployment.rollback")
    assert len(audit) == 1
    assert audit[0].actor == "alice" and audit[0].details["revision"] == 4
    assert audit[0].details["reason"] == "rolled back from the dashboard"
    assert audit[0].details["routes"] == {f"{MODEL}/1": 100}
    assert site.sc.alice.audit.verify().ok

    # Nothing earlier to go back to: the page says so (409) instead of an error page, and nothing changes.
    again = site.http.post(f"/deployments/{DEP}/rollback")
    assert again.status_code == 409 and again.headers["content-type"].startswith("text/html")
    alert = text_of(again.text.split('id="rollback-conflict">')[1].split("</div>")[0])
    assert alert == f"409 deployment '{DEP}' has no earlier policy to roll back to"
    # the deployment page itself, not an error page
    assert 'role="alert"' in again.text
    assert 'id="routes-table"' in again.text and 'id="chart-split"' in again.text
    assert site.sc.alice.deployments.get(DEP).revision == 4
    assert len(site.sc.alice.audit.entries(entity_type="deployment", entity_id=DEP,
                                           action="deployment.rollback")) == 1


def test_a_stale_or_malformed_rolled_back_parameter_shows_no_notice(site: Site) -> None:
    for q in ("abc", "2", "99", ""):
        r = site.http.get(f"/deployments/{DEP}?rolled_back={q}")
        assert r.status_code == 200 and 'id="rollback-notice"' not in r.text


def test_rollback_from_another_site_is_refused(site: Site) -> None:
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"}):
        r = site.http.post(f"/deployments/{DEP}/rollback", headers=headers, follow_redirects=False)
        assert r.status_code == 403, headers
        assert "only from its own pages" in r.text
    assert site.sc.alice.deployments.get(DEP).revision == 3
    same = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    r = site.http.post(f"/deployments/{DEP}/rollback", headers=same, follow_redirects=False)
    assert r.status_code == 303 and site.sc.alice.deployments.get(DEP).revision == 4


# ---- errors and escaping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/deployments/nope"),
    ("GET", "/deployments/a@b"),
    ("GET", "/deployments/%20padded"),
    ("GET", "/deployments/-dash-first"),
    ("GET", "/deployments/" + "x" * 200),
    ("GET", "/deployments/%3Cscript%3E"),
    ("POST", "/deployments/nope/rollback"),
    ("POST", "/deployments/a@b/rollback"),
    ("POST", "/deployments/%3Cscript%3E/rollback"),
])
def test_unknown_and_invalid_names_are_a_404_page(empty: TestClient, method: str, path: str) -> None:
    r = empty.request(method, path)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "Not found" in r.text and 'role="alert"' in r.text
    assert "<script>" not in r.text


def test_everything_user_written_is_escaped(site: Site) -> None:
    api = site.sc.alice.deployments
    api.create("evil", f"{MODEL}/1", description=EVIL, reason=EVIL)
    api.split("evil", {f"{MODEL}/1": 50, f"{MODEL}/2": 50}, sticky_key="<b>user</b>", reason=EVIL)
    pages = [site.http.get("/deployments"), site.http.get("/deployments/evil")]
    for r in pages:
        assert r.status_code == 200
        assert "<script>alert" not in r.text and "<b>user" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text  # the description
    detail = pages[1].text
    assert detail.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # description and two reasons
    assert "<code>&lt;b&gt;user&lt;/b&gt;</code>" in detail


def test_a_deployment_without_traffic_renders_empty_charts(site: Site) -> None:
    site.sc.alice.deployments.create("quiet", f"{MODEL}/2")
    html = site.http.get("/deployments/quiet").text
    assert "No requests recorded in the last hour" in html
    assert chart(html, "requests")["series"] == [] and len(chart(html, "requests")["x"]) == 60
    assert by_label(chart(html, "split")) == {"breast-cancer v2": [100, 100]}
    assert "No decisions yet" in html


# ---- shaping ---------------------------------------------------------------------------------------------


def test_timeline_charts_fill_missing_buckets_and_keep_points_off_the_grid() -> None:
    since, now = 1_000_000, 1_000_000 + 5 * 60_000
    points = [TimelinePoint(model="m", version=2, role="route", t=since + 60_000, requests=10, errors=5,
                            p99_ms=20.0, mean_ms=5.0),
              TimelinePoint(model="m", version=1, role="route", t=since + 90_000, requests=4, errors=0,
                            p99_ms=None, mean_ms=None)]
    colours = version_colours(points)
    assert colours == {"m/1": 0, "m/2": 1}
    charts = timeline_charts(points, since, now, 60.0, colours)
    req = charts["requests"]
    assert req["x"] == [(since + d) / 1000 for d in (0, 60_000, 90_000, 120_000, 180_000, 240_000)]
    assert by_label(req) == {"m v1": [0, 0, 4, 0, 0, 0], "m v2": [0, 10, 0, 0, 0, 0]}
    assert by_label(charts["error_rate"])["m v2"] == [None, 50.0, None, None, None, None]
    assert by_label(charts["p99"])["m v1"] == [None] * 6


def test_split_chart_holds_each_revision_until_the_next() -> None:
    from arsenale.serving.models import PolicyChange, Route, TrafficPolicy

    def change(rev: int, t: int, **weights: float) -> PolicyChange:
        routes = [Route(model="m", version=int(k[1:]), weight=w) for k, w in weights.items()]
        return PolicyChange(deployment="d", revision=rev, action="split", policy=TrafficPolicy(routes=routes),
                            actor="a", timestamp=t)

    # newest first, as the service returns it
    history = [change(3, 3000, v2=100), change(2, 2000, v1=50, v2=50), change(1, 1000, v1=100)]
    spec = split_chart(history, 10_000, {"m/1": 0, "m/2": 1})
    assert spec["x"] == [1, 2, 3, 10] and spec["revisions"] == [1, 2, 3]
    assert by_label(spec) == {"m v1": [100, 50, 0, 0], "m v2": [0, 50, 100, 100]}
