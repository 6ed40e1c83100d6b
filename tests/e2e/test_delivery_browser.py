"""The delivery page in a real browser: the system Chromium, driven by Playwright, against a real server.

The store holds the history of tests/audit/test_delivery (made under a frozen clock in March 2024). The
Delivery link in the top bar opens the last 30 days, in which nothing changed: the cards say why they have
no value (but coverage, measured now). Choosing the history's window in the form fills the cards and the lists; a malformed time comes
back with its message beside the form (a 400). No other console errors along the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.audit.test_delivery import END, T0, History, build_history, freeze, iso
from tests.conftest import LiveServer
from tests.e2e import test_dashboard_browser as runs_pages
from tests.e2e.test_dashboard_browser import Tab

pytestmark = pytest.mark.browser

browser = runs_pages.browser  # the system Chromium, and a tab that records console errors
tab = runs_pages.tab

CARDS = ("lead-time", "frequency", "rollbacks", "monitoring", "alerts")


@dataclass
class Site:
    base: str
    history: History


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import os

    from arsenale.platform import Client
    from arsenale.server.app import create_app

    root = tmp_path_factory.mktemp("delivery")
    uri, artifacts = f"sqlite:///{root / 'arsenale.db'}", str(root / "artifacts")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse isolation fixture has not run yet
        for key in [k for k in os.environ if k.startswith("ARSENALE_")]:
            mp.delenv(key)
        mp.setenv("ARSENALE_HOME", str(root / ".arsenale"))
        client = Client(uri, artifacts=artifacts, actor="browser")
        history = build_history(client, freeze(mp), root)
        client.monitors.alerts.notifier.close(timeout=5)
    with LiveServer(create_app(client)) as server:
        yield Site(server.url, history)


def values(page: Any) -> dict[str, str]:
    return {c: page.locator(f"#card-{c} .metric-value").inner_text() for c in CARDS}


def test_from_the_top_bar_to_the_history_window(site: Site, tab: Tab) -> None:
    page: Any = tab.page
    page.goto(f"{site.base}/deployments")
    page.click('header.topbar a:text-is("Delivery")')
    page.wait_for_url("**/delivery")
    # The last 30 days of today hold no change: a dash and the reason on those cards, never a 0. Coverage
    # is measured at the window's end, now: the two models still answer, one of them monitored.
    assert values(page) == {**{c: "—" for c in CARDS}, "monitoring": "50.0%"}
    for c in CARDS:
        if c != "monitoring":
            assert page.locator(f"#card-{c} .metric-reason").inner_text().strip()

    page.fill("#since", iso(T0))
    page.fill("#until", iso(END))
    page.click("#delivery-form button[type=submit]")
    page.wait_for_selector("#lead-times-table")
    assert values(page) == {"lead-time": "22h 00m", "frequency": "11.7 / week", "rollbacks": "40.0%",
                            "monitoring": "50.0%", "alerts": "9h 00m"}
    assert page.locator("#lead-times-table tbody tr").count() == 4
    assert page.locator("#rollbacks-table tbody tr").count() == 2
    assert page.locator("#coverage-table tr.unmonitored td.name").all_inner_texts() == ["fraud"]
    assert page.locator("#alerts-table tbody tr td.promoted").inner_text().startswith("v3 at ")
    # The cards sit side by side in a grid, not one under the other.
    first, second = (page.locator(f"#card-{c}").bounding_box() for c in CARDS[:2])
    assert first["y"] == second["y"] and second["x"] > first["x"] + first["width"]

    # Following a version leads to its page in the registry.
    page.click('#lead-times-table a:text-is("churn v3")')
    page.wait_for_url("**/models/churn/versions/3")
    page.go_back()
    page.wait_for_selector("#lead-times-table")

    assert tab.errors == []
    page.fill("#since", "last tuesday")
    page.click("#delivery-form button[type=submit]")
    page.wait_for_selector("#delivery-error")
    assert "since must be a datetime" in page.locator("#delivery-error").inner_text()
    assert page.locator("#since").input_value() == "last tuesday"
    assert page.locator(".metric").count() == 0
    assert [e for e in tab.errors if "status of 400" not in e] == []  # only the browser noting the 400
