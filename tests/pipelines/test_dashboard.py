"""The pipeline pages of the dashboard: the runs list and one run's DAG as SVG."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

import arsenale as ars
from arsenale.pipelines.models import StepRun, StepStatus
from arsenale.platform import Client
from arsenale.server.dashboard import install
from arsenale.server.dashboard_pipelines import BOX_W, GAP_X, PAD, layout
from tests.pipelines import example_pipelines as ex


def make_http(client: Client) -> TestClient:
    app = FastAPI()
    app.state.client = client
    install(app)
    return TestClient(app)


def test_layout_puts_each_layer_in_its_own_column() -> None:
    steps = [StepRun(pipeline_run_id="p", name=n, step_ref="m:f", status=StepStatus.SUCCEEDED, layer=layer,
                     upstream=ups) for n, layer, ups in
             [("a", 0, []), ("b", 1, ["a"]), ("c", 1, ["a"]), ("d", 2, ["b", "c"])]]
    dag = layout(steps)
    xs = {b.name: b.x for b in dag.boxes}
    assert xs == {"a": PAD, "b": PAD + BOX_W + GAP_X, "c": PAD + BOX_W + GAP_X, "d": PAD + 2 * (BOX_W + GAP_X)}
    assert len({b.y for b in dag.boxes if b.name in "bc"}) == 2 and len(dag.edges) == 4
    assert dag.width == 2 * PAD + 2 * (BOX_W + GAP_X) + BOX_W


def test_pipeline_pages_render_the_dag_with_status_colours(pclient: Client) -> None:
    ok = ars.run_pipeline(ex.diamond, "local", {"delay": 0.0}, client=pclient)
    bad = ars.run_pipeline(ex.failing, "local", client=pclient)
    http = make_http(pclient)

    page = http.get("/pipelines")
    assert page.status_code == 200
    assert ok.pipeline_run_id[:12] in page.text and bad.pipeline_run_id[:12] in page.text

    page = http.get(f"/pipelines/runs/{bad.pipeline_run_id}")
    assert page.status_code == 200
    svg = re.search(r'<svg id="pipeline-dag".*?</svg>', page.text, re.DOTALL)
    assert svg is not None
    found = dict(re.findall(r'data-step="([^"]+)" data-status="([^"]+)"', svg.group(0)))
    assert found == {"source": "succeeded", "side": "succeeded", "boom": "failed", "after_boom": "not_run"}
    assert 'fill="#fde8e8"' in svg.group(0) and 'fill="#f1f1f1"' in svg.group(0)  # failed red, not-run grey
    assert svg.group(0).count('class="dag-edge"') == 3
    assert "ValueError: the boom step always fails" in page.text
    assert f'/runs/{bad.step("boom").run_id}' in page.text  # each box links to its tracking run

    cached = ars.run_pipeline(ex.diamond, "local", {"delay": 0.0}, client=pclient)
    page = http.get(f"/pipelines/runs/{cached.pipeline_run_id}")
    assert page.text.count('data-status="cached"') == 4 and 'fill="#e0efff"' in page.text

    assert http.get(f"/pipelines/runs/{'0' * 32}").status_code == 404
    assert http.get("/pipelines/runs/%20").status_code == 404
