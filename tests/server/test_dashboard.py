"""The dashboard's pages, fragments and JSON through FastAPI's TestClient, on a real SQLite store."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from arsenale.platform import Client
from arsenale.server.dashboard import install

EVIL = "<script>alert(1)</script>"
HTMX = {"HX-Request": "true"}


@dataclass
class Seeded:
    http: TestClient
    client: Client
    experiment_id: str
    runs: dict[str, str]  # run name -> run id


def make_app(client: Client) -> FastAPI:
    app = FastAPI()
    app.state.client = client
    install(app)
    return app


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    client = Client(f"sqlite:///{tmp_path / 'arsenale.db'}", artifacts=str(tmp_path / "artifacts"), actor="tester")
    api = client.tracking
    exp = api.create_experiment("sweep", description="C sweep")
    api.create_experiment("other")
    runs = {}
    for name, c, acc in [("alpha", "0.1", 0.80), ("beta", "1.0", 0.95), ("gamma", "10.0", 0.91), (EVIL, "1.0", 0.5)]:
        run = api.create_run(exp.experiment_id, run_name=name, params={"C": c, "kernel": "rbf"},
                             tags={"team": "fraud", "ars.source.git_commit": "0123abcd"})
        api.log_batch(run.info.run_id, [("acc", acc * s / 9, s, 0) for s in range(10)])
        api.update_run(run.info.run_id, status="FINISHED")
        runs[name] = run.info.run_id
    api.log_batch(runs["alpha"], [("loss", v, s, 0) for s, v in enumerate([1.0, math.nan, 0.5, math.inf, 0.25])])
    api.log_artifact_bytes(runs["alpha"], "model/weights.bin", b"\x00" * 100)
    api.log_artifact_bytes(runs["alpha"], "notes <b>.txt", b"hello")
    with TestClient(make_app(client)) as http:
        yield Seeded(http, client, exp.experiment_id, runs)


def run_names(html: str) -> list[str]:
    """Run names in table order (names are the text of links to /runs/<id> in the name column)."""
    return re.findall(r'<td class="name"><a href="/runs/[0-9a-f]{32}">(.*?)</a>', html)


# ---- pages render ----------------------------------------------------------------------------------------


def test_experiments_page_lists_each_experiment_with_a_link(seeded: Seeded) -> None:
    r = seeded.http.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert f'href="/experiments/{seeded.experiment_id}">sweep</a>' in r.text
    assert ">other</a>" in r.text
    assert "/static/vendor/htmx.min.js" in r.text and "/static/vendor/uPlot.iife.min.js" in r.text


def test_empty_store_shows_a_hint(tmp_path: Path) -> None:
    client = Client(f"sqlite:///{tmp_path / 'a.db'}", artifacts=str(tmp_path / "art"), actor="t")
    with TestClient(make_app(client)) as http:
        r = http.get("/")
    assert r.status_code == 200
    assert "No experiments yet" in r.text


def test_runs_page_shows_runs_with_the_union_of_param_and_metric_columns(seeded: Seeded) -> None:
    r = seeded.http.get(f"/experiments/{seeded.experiment_id}")
    assert r.status_code == 200
    assert sorted(run_names(r.text)) == sorted(["alpha", "beta", "gamma", "&lt;script&gt;alert(1)&lt;/script&gt;"])
    for sort_key in ("attributes.run_name", "attributes.status", "attributes.start_time", "params.C",
                     "params.kernel", "metrics.acc", "metrics.loss"):
        assert f'data-sort="{sort_key}"' in r.text
    assert 'name="runs" value="' + seeded.runs["beta"] + '" form="compare-form"' in r.text
    assert "FINISHED" in r.text


def test_filter_narrows_the_table_and_htmx_gets_only_the_fragment(seeded: Seeded) -> None:
    url = f"/experiments/{seeded.experiment_id}"
    r = seeded.http.get(url, params={"filter": "metrics.acc > 0.9 and params.C = '1.0'"})
    assert r.status_code == 200
    assert run_names(r.text) == ["beta"]
    assert "<html" in r.text

    fragment = seeded.http.get(url, params={"filter": "metrics.acc > 0.9"}, headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "<table" in fragment.text
    assert sorted(run_names(fragment.text)) == ["beta", "gamma"]

    # A history restore asks for the whole page, even from htmx.
    restore = seeded.http.get(url, headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


def test_sorting_by_a_metric_and_the_header_link_toggles_direction(seeded: Seeded) -> None:
    url = f"/experiments/{seeded.experiment_id}"
    desc = seeded.http.get(url, params={"order_by": "metrics.acc DESC"})
    assert desc.status_code == 200
    assert run_names(desc.text)[:3] == ["beta", "gamma", "alpha"]
    assert 'aria-sort="descending"' in desc.text
    # The header of the sorted column now asks for the other direction, keeping the filter.
    asc = seeded.http.get(url, params={"order_by": "metrics.acc ASC", "filter": "params.kernel = 'rbf'"})
    assert run_names(asc.text)[-3:] == ["alpha", "gamma", "beta"]
    assert "order_by=metrics.acc+DESC" in asc.text
    assert "filter=params.kernel+%3D+%27rbf%27" in asc.text

    by_name = seeded.http.get(url, params={"order_by": "attributes.run_name ASC"})
    names = run_names(by_name.text)
    assert names == sorted(names)


def test_paging_with_the_page_token_visits_every_run_once(seeded: Seeded) -> None:
    url = f"/experiments/{seeded.experiment_id}"
    seen: list[str] = []
    params = {"order_by": "attributes.run_name ASC", "max_results": "3"}
    r = seeded.http.get(url, params=params)
    seen += run_names(r.text)
    token = re.search(r'page_token=([^"&]+)"[^>]*rel="next"', r.text.replace("&amp;", "&"))
    assert token is not None
    r2 = seeded.http.get(url, params={**params, "page_token": token.group(1).replace("%3D", "=")})
    seen += run_names(r2.text)
    assert len(seen) == 4 and len(set(seen)) == 4
    assert 'rel="next"' not in r2.text
    assert "First page" in r2.text


@pytest.mark.parametrize("params", [
    {"filter": "metrics.acc >> 0.9"},
    {"filter": "params.C = 'unterminated"},
    {"filter": "(metrics.acc > 1"},
    {"filter": "nonsense.key = 1"},
    {"order_by": "metrics.acc SIDEWAYS"},
    {"page_token": "not-a-token"},
])
def test_a_malformed_search_shows_its_message_not_a_500(seeded: Seeded, params: dict[str, str]) -> None:
    url = f"/experiments/{seeded.experiment_id}"
    for headers in ({}, HTMX):
        r = seeded.http.get(url, params=params, headers=headers)
        assert r.status_code == 400
        assert 'class="alert" role="alert"' in r.text
        assert "Cannot search:" in r.text
        assert run_names(r.text) == []
        assert ("<html" in r.text) == (not headers)
    # the user's text is kept in the box (escaped) so it can be fixed
    if "filter" in params:
        page = seeded.http.get(url, params=params)
        assert "value=\"" + params["filter"].replace("'", "&#39;").replace(">", "&gt;") + "\"" in page.text


def test_a_bad_page_size_is_a_400_page(seeded: Seeded) -> None:
    r = seeded.http.get(f"/experiments/{seeded.experiment_id}", params={"max_results": "lots"})
    assert r.status_code == 400
    assert "max_results must be an integer" in r.text


def test_run_page_shows_info_params_tags_source_charts_and_artifacts(seeded: Seeded) -> None:
    run_id = seeded.runs["alpha"]
    r = seeded.http.get(f"/runs/{run_id}")
    assert r.status_code == 200
    html = r.text
    assert run_id in html and "alpha" in html and "FINISHED" in html
    assert f'href="/experiments/{seeded.experiment_id}">sweep</a>' in html
    assert "<tr><th>C</th><td>0.1</td></tr>" in html
    assert "<tr><th>team</th><td>fraud</td></tr>" in html
    # source tags are grouped under Source, without their prefix
    assert "ars.source.git_commit" not in html
    assert '<th>git commit</th><td class="mono">0123abcd</td>' in html
    # one chart per metric, each fetching the downsampled history
    for key in ("acc", "loss"):
        assert f'data-metric-src="/runs/{run_id}/metrics.json?key={key}&amp;max_points=2000"' in html
    # artifacts: the folder and the file, downloadable through the dashboard's own route (no API router here)
    assert ">model/</a>" in html
    assert f'href="/runs/{run_id}/artifacts/raw/notes%20%3Cb%3E.txt"' in html
    assert "notes &lt;b&gt;.txt" in html


def test_artifact_folders_are_browsable_and_files_downloadable(seeded: Seeded) -> None:
    run_id = seeded.runs["alpha"]
    fragment = seeded.http.get(f"/runs/{run_id}/artifacts", params={"path": "model"}, headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "weights.bin" in fragment.text and "100 B" in fragment.text
    assert f'href="/runs/{run_id}/artifacts/raw/model/weights.bin"' in fragment.text
    # the no-JS fallback: the run page itself opens a folder
    page = seeded.http.get(f"/runs/{run_id}", params={"artifact_path": "model"})
    assert "weights.bin" in page.text

    raw = seeded.http.get(f"/runs/{run_id}/artifacts/raw/notes <b>.txt")
    assert raw.status_code == 200
    assert raw.content == b"hello"
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert raw.headers["x-content-type-options"] == "nosniff"

    assert seeded.http.get(f"/runs/{run_id}/artifacts/raw/missing.txt").status_code == 404
    folder = seeded.http.get(f"/runs/{run_id}/artifacts/raw/model")
    assert folder.status_code == 400 and "folder" in folder.text
    assert seeded.http.get(f"/runs/{run_id}/artifacts", params={"path": "../etc"}).status_code == 400


def test_download_links_use_the_json_api_route_when_the_app_has_it(seeded: Seeded) -> None:
    app = make_app(seeded.client)

    @app.get("/api/v1/runs/{run_id}/artifacts/content/{path:path}")
    def content(run_id: str, path: str) -> bytes:  # pragma: no cover - only its presence matters
        return b""

    run_id = seeded.runs["alpha"]
    with TestClient(app) as http:
        html = http.get(f"/runs/{run_id}").text
    assert f'href="/api/v1/runs/{run_id}/artifacts/content/notes%20%3Cb%3E.txt"' in html


def test_metric_json_sends_non_finite_values_as_null(seeded: Seeded) -> None:
    r = seeded.http.get(f"/runs/{seeded.runs['alpha']}/metrics.json", params={"key": "loss"})
    assert r.status_code == 200
    body = json.loads(r.text)  # strict JSON: no NaN or Infinity literals
    assert body["steps"] == [0, 1, 2, 3, 4]
    assert body["values"] == [1.0, None, 0.5, None, 0.25]
    assert body["nonfinite"] == 2
    assert body["downsampled"] is False and body["mins"] is None
    assert "NaN" not in r.text and "Infinity" not in r.text


def test_metric_json_downsamples_with_min_max_so_spikes_survive(seeded: Seeded) -> None:
    run_id = seeded.runs["beta"]
    points = [("big", 1.0, s, 0) for s in range(5000)]
    points[3001] = ("big", 100.0, 3001, 0)
    seeded.client.tracking.log_batch(run_id, points)
    body = seeded.http.get(f"/runs/{run_id}/metrics.json", params={"key": "big", "max_points": "500"}).json()
    assert body["downsampled"] is True and body["total_points"] == 5000
    assert len(body["steps"]) <= 500
    assert max(body["maxs"]) == 100.0
    assert min(body["mins"]) == 1.0


def test_metric_json_errors_are_json(seeded: Seeded) -> None:
    missing = seeded.http.get(f"/runs/{'0' * 32}/metrics.json", params={"key": "acc"})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    bad = seeded.http.get(f"/runs/{seeded.runs['alpha']}/metrics.json", params={"key": "acc", "max_points": "1"})
    assert bad.status_code == 400
    assert "max_points" in bad.json()["message"]
    assert seeded.http.get("/runs/nothex/metrics.json", params={"key": "acc"}).status_code == 404


def test_compare_page_puts_runs_side_by_side_and_highlights_differences(seeded: Seeded) -> None:
    a, b = seeded.runs["alpha"], seeded.runs["beta"]
    r = seeded.http.get("/compare", params={"runs": f"{a},{b}"})
    assert r.status_code == 200
    html = r.text
    assert ">alpha</a>" in html and ">beta</a>" in html
    rows = {key: cls for cls, key in re.findall(r'<tr class="(diff|same)">\s*<th>([^<]+)</th>', html)}
    assert rows["C"] == "diff"
    assert rows["kernel"] == "same"
    assert rows["acc"] == "diff"
    assert rows["loss"] == "diff"  # alpha has it, beta does not
    # overlaid charts only for the metrics both runs have
    charts = re.findall(r'data-compare-series="([^"]+)" data-label="([^"]+)"', html)
    assert [label for _, label in charts] == ["acc"]
    series = json.loads(charts[0][0].replace("&#34;", '"').replace("&amp;", "&"))
    assert [s["label"] for s in series] == ["alpha", "beta"]
    assert series[0]["src"] == f"/runs/{a}/metrics.json?key=acc&max_points=2000"

    # repeated `runs` parameters (the compare form's checkboxes) work the same
    assert seeded.http.get("/compare", params=[("runs", a), ("runs", b)]).text.count('class="swatch"') == 2


def test_compare_errors(seeded: Seeded) -> None:
    assert seeded.http.get("/compare").status_code == 400
    unknown = seeded.http.get("/compare", params={"runs": f"{seeded.runs['alpha']},{'f' * 32}"})
    assert unknown.status_code == 404
    assert "f" * 32 in unknown.text


@pytest.mark.parametrize("path", [
    "/experiments/999",
    "/experiments/abc",
    "/experiments/-1",
    "/runs/" + "0" * 32,
    "/runs/not-a-run-id",
    "/runs/" + "0" * 32 + "/artifacts",
    "/runs/" + "0" * 32 + "/artifacts/raw/x.txt",
])
def test_unknown_ids_are_a_404_page(seeded: Seeded, path: str) -> None:
    r = seeded.http.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Not found" in r.text and 'role="alert"' in r.text
    fragment = seeded.http.get(path, headers=HTMX)
    assert fragment.status_code == 404 and "<html" not in fragment.text


def test_everything_user_written_is_escaped(seeded: Seeded) -> None:
    evil_id = seeded.runs[EVIL]
    api = seeded.client.tracking
    api.log_batch(evil_id, params={"note": '"><img src=x onerror=alert(1)>'}, tags={"who": "<b>me</b>"})
    exp = api.create_experiment("<img src=x onerror=alert(2)>")
    pages = [
        seeded.http.get(f"/experiments/{seeded.experiment_id}").text,
        seeded.http.get(f"/runs/{evil_id}").text,
        seeded.http.get("/compare", params={"runs": f"{evil_id},{seeded.runs['alpha']}"}).text,
        seeded.http.get("/").text,
        seeded.http.get(f"/experiments/{exp.experiment_id}").text,
        seeded.http.get(f"/experiments/{seeded.experiment_id}", params={"filter": '"><script>x()</script>'}).text,
    ]
    for html in pages:
        assert "<script>alert" not in html
        assert "<script>x()" not in html
        assert "<img src=x" not in html
        assert "<b>me</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]


def test_static_files_are_served(seeded: Seeded) -> None:
    for name, marker in [("vendor/htmx.min.js", "htmx"), ("vendor/uPlot.iife.min.js", "uPlot"),
                         ("vendor/uPlot.min.css", ".uplot"), ("arsenale.js", "uPlot"),
                         ("arsenale.css", ":root"), ("vendor/htmx.LICENSE", "BSD"),
                         ("vendor/uPlot.LICENSE", "MIT")]:
        r = seeded.http.get(f"/static/{name}")
        assert r.status_code == 200, name
        assert marker in r.text, name


def test_the_app_factory_serves_the_dashboard(seeded: Seeded) -> None:
    app_module = pytest.importorskip("arsenale.server.app")
    with TestClient(app_module.create_app(seeded.client)) as http:
        home = http.get("/")
        assert home.status_code == 200 and "sweep" in home.text
        run = http.get(f"/runs/{seeded.runs['alpha']}")
        assert run.status_code == 200
        assert f"/api/v1/runs/{seeded.runs['alpha']}/artifacts/content/" in run.text
        assert http.get("/runs/not-a-run-id").status_code == 404
