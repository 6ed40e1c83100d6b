"""The dashboard in a real browser: the system Chromium, driven by Playwright, against a real uvicorn server.

Filters and sorts the runs table through htmx, compares two runs, opens a run and checks that uPlot drew
its charts, with no console errors along the way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from arsenale.platform import Client
from tests.conftest import LiveServer, unavailable

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
STEPS = 3000


@dataclass
class Site:
    base: str
    experiment_id: str
    runs: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from arsenale.server.app import create_app

    root = tmp_path_factory.mktemp("dashboard")
    client = Client(f"sqlite:///{root / 'arsenale.db'}", artifacts=str(root / "artifacts"), actor="browser")
    api = client.tracking
    exp = api.create_experiment("browser-sweep")
    runs = {}
    for i, lr in enumerate([0.001, 0.01, 0.03, 0.1, 0.3]):
        run = api.create_run(exp.experiment_id, run_name=f"lr-{lr}", params={"lr": lr, "optimizer": "sgd"})
        points = []
        for s in range(STEPS):
            loss = 2.0 * math.exp(-s * lr / 20) + 0.01 * ((s * 7919) % 13)
            points.append(("loss", math.nan if s == 1234 else loss, s, 0))
            if s % 10 == 0:
                points.append(("acc", 1 - loss / 2.5, s, 0))
        api.log_batch(run.info.run_id, points)
        api.log_artifact_bytes(run.info.run_id, "model/weights.bin", b"w" * 1000)
        api.update_run(run.info.run_id, status="FINISHED")
        runs[f"lr-{lr}"] = run.info.run_id

    with LiveServer(create_app(client)) as server:
        yield Site(server.url, exp.experiment_id, runs)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing (Debian package `chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Tab:
    page: Any
    errors: list[str]  # console errors and uncaught exceptions


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    try:
        yield Tab(page, errors)
    finally:
        context.close()


def row_names(page: Any) -> list[str]:
    return page.locator("#runs-table tbody td.name").all_inner_texts()


def test_filter_sort_compare_and_open_a_run(site: Site, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{site.base}/experiments/{site.experiment_id}")
    assert page.locator("#runs-table tbody tr").count() == 5

    # Filter: htmx swaps only the table, the address bar follows.
    page.fill("#filter", "metrics.acc > 0.9 and params.optimizer = 'sgd'")
    page.press("#filter", "Enter")
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 3")
    assert sorted(row_names(page)) == ["lr-0.03", "lr-0.1", "lr-0.3"]
    assert "filter=" in page.url
    assert page.locator("header.topbar").count() == 1  # the page was not replaced, only the table

    # Sort by a metric: the first click sorts descending, the second ascending; the filter is kept.
    page.click('a[data-sort="metrics.acc"]')
    page.wait_for_selector('th.sorted[aria-sort="descending"] a[data-sort="metrics.acc"]')
    assert row_names(page) == ["lr-0.3", "lr-0.1", "lr-0.03"]
    page.click('a[data-sort="metrics.acc"]')
    page.wait_for_selector('th.sorted[aria-sort="ascending"] a[data-sort="metrics.acc"]')
    assert row_names(page) == ["lr-0.03", "lr-0.1", "lr-0.3"]

    # A new filter keeps the sort order (the hidden order_by input belongs to the search form).
    page.fill("#filter", "metrics.acc > 0.995")
    page.press("#filter", "Enter")
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 2")
    assert row_names(page) == ["lr-0.1", "lr-0.3"]
    assert parse_qs(urlsplit(page.url).query) == {"filter": ["metrics.acc > 0.995"], "order_by": ["metrics.acc ASC"]}

    # Select two runs and compare them.
    compare = page.locator("button[data-compare]")
    assert compare.is_disabled()
    page.locator('#runs-table tbody input[type="checkbox"]').nth(0).check()
    page.locator('#runs-table tbody input[type="checkbox"]').nth(1).check()
    assert compare.is_enabled()
    compare.click()
    page.wait_for_url("**/compare?**")
    assert page.locator("table.compare tr.diff th", has_text="lr").count() == 1
    page.wait_for_selector(".chart .u-wrap canvas")
    assert_charts_drawn(page, expected=2)

    # Open a run from the compare table; every metric gets a chart, drawn on a non-empty canvas.
    page.click('table.compare thead a:text("lr-0.1")')
    page.wait_for_url(f"**/runs/{site.runs['lr-0.1']}")
    assert_charts_drawn(page, expected=2)
    assert page.locator("#artifacts a.folder", has_text="model").count() == 1

    assert tab.errors == []


def test_a_malformed_filter_shows_the_message_in_place(site: Site, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{site.base}/experiments/{site.experiment_id}")
    page.fill("#filter", "metrics.acc >> 1")
    page.press("#filter", "Enter")
    alert = page.locator("#runs .alert")
    alert.wait_for()
    assert "expected a value" in alert.inner_text()
    assert page.locator("#runs-table").count() == 0
    # the only console message is the browser's note of the 400 answer itself
    assert all("400" in e for e in tab.errors), tab.errors


def test_a_run_with_gaps_draws_its_chart(site: Site, tab: Tab) -> None:
    page = tab.page
    run_id = site.runs["lr-0.01"]
    page.goto(f"{site.base}/runs/{run_id}")
    assert_charts_drawn(page, expected=2)
    # `loss` has 3,000 points: downsampled into buckets drawn as a line with a min-max band
    note = page.locator('.chart[data-label="loss"] .chart-note')
    assert "buckets" in note.inner_text()
    assert tab.errors == []


def assert_charts_drawn(page: Any, expected: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('.chart .u-wrap canvas').length === {expected}")
    sizes = page.eval_on_selector_all(".chart .u-wrap canvas", """canvases => canvases.map(c => {
        const box = c.getBoundingClientRect();
        const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let inked = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) inked++;
        return {width: box.width, height: box.height, inked};
    })""")
    assert len(sizes) == expected
    for s in sizes:
        assert s["width"] > 100 and s["height"] > 100, s
        assert s["inked"] > 500, s  # axes, grid and the series were painted
