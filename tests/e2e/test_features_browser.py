"""The feature-store pages, over HTTP and in a real browser: the views list with freshness, a view's features
with source statistics and its materializations; a view that does not exist is a 404 page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import arsenale as ars
from arsenale.features.store import FeatureStore
from arsenale.platform import Client
from tests.conftest import LiveServer
from tests.e2e import test_dashboard_browser as runs_pages
from tests.e2e.test_dashboard_browser import Tab

browser = runs_pages.browser
tab = runs_pages.tab


@dataclass
class Site:
    base: str
    rows: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import os

    from arsenale.server.app import create_app

    root = tmp_path_factory.mktemp("features")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse isolation fixture has not run yet
        for key in [k for k in os.environ if k.startswith("ARSENALE_")]:
            mp.delenv(key)
        mp.setenv("ARSENALE_HOME", str(root / ".arsenale"))
        client = Client(f"sqlite:///{root / 'arsenale.db'}", artifacts=str(root / "artifacts"), actor="ana")
        now = datetime.now(UTC).replace(microsecond=0)
        rng = np.random.default_rng(2)
        client.datasets.register("transactions", pd.DataFrame({
            "customer_id": rng.integers(0, 25, 400).astype("int64"),
            "event_time": pd.to_datetime([now - timedelta(hours=float(h)) for h in rng.uniform(1, 300, 400)],
                                         utc=True).floor("ms"),
            "amount": np.round(rng.uniform(1, 100, 400), 2)}))
        customer = ars.Entity("customer", join_keys=["customer_id"])
        fs = FeatureStore(client)
        fs.apply([customer, ars.FeatureView(
            "txn_stats", entities=[customer], source="dataset:transactions", timestamp="event_time", ttl="30d",
            description="card spending", features={"amount": "amount", "amount_7d": "sum(amount) over 7d"})])
        [mat] = fs.materialize(end=now)
        app = create_app(client)
        app.state.feature_store = fs  # the online store it filled (tests change ARSENALE_HOME per test)
        with LiveServer(app) as server:
            yield Site(server.url, mat.rows)


def test_pages_over_http(site: Site) -> None:
    with httpx.Client(base_url=site.base) as http:
        listing = http.get("/features")
        assert listing.status_code == 200 and 'data-view="txn_stats"' in listing.text
        assert "card spending" in listing.text and "customer_id" in listing.text
        page = http.get("/features/txn_stats")
        assert page.status_code == 200 and "sum(amount) over 7d" in page.text
        assert 'id="materializations-table"' in page.text and "dataset:transactions@1" in page.text
        assert http.get("/features/nope").status_code == 404
        assert http.get("/features/..%2F..%2Fetc").status_code == 404


@pytest.mark.browser
def test_views_to_a_view_with_statistics_and_materializations(site: Site, tab: Tab) -> None:
    page: Any = tab.page
    page.goto(f"{site.base}/features")
    row = page.locator('#views-table tr[data-view="txn_stats"]')
    assert row.locator("td.rows").inner_text() == str(site.rows)
    assert "never" not in row.locator("td.age").inner_text()
    page.click('#views-table a:text-is("txn_stats")')
    page.wait_for_url("**/features/txn_stats")
    amount = page.locator('#features-table tr[data-feature="amount"]')
    assert amount.locator("td").nth(2).inner_text() == "400"  # values of the input column in the source
    assert page.locator("#materializations-table tbody tr").count() == 1
    assert "succeeded" in page.locator("#materializations-table").inner_text()
    assert tab.errors == []
