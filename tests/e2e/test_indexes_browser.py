"""The vector indexes' pages in a real browser: from the navigation to an index, a text search on its newest
version, then on an older one, and the evaluations page reached from the navigation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from arsenale.llm.vectors import VectorIndex
from arsenale.platform import Client
from tests.conftest import LiveServer
from tests.e2e import test_dashboard_browser as runs_pages
from tests.e2e.test_dashboard_browser import Tab

browser = runs_pages.browser
tab = runs_pages.tab


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import os

    from arsenale.server.app import create_app

    root = tmp_path_factory.mktemp("indexes")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse isolation fixture has not run yet
        for key in [k for k in os.environ if k.startswith("ARSENALE_")]:
            mp.delenv(key)
        mp.setenv("ARSENALE_HOME", str(root / ".arsenale"))
        client = Client(f"sqlite:///{root / 'arsenale.db'}", artifacts=str(root / "artifacts"), actor="ana")
        kb = VectorIndex("support/kb", client=client)
        kb.add([{"id": "refund", "text": "Refunds take five business days."},
                {"id": "pwd", "text": "Reset your password from the login page."},
                {"id": "ship", "text": "Shipping is free above fifty euros."}])
        kb.delete(["pwd"])
        with LiveServer(create_app(client)) as server:
            yield server.url


@pytest.mark.browser
def test_navigate_to_an_index_and_search_it(site: str, tab: Tab) -> None:
    page: Any = tab.page
    page.goto(f"{site}/")
    page.click('header nav a:text-is("Indexes")')
    page.wait_for_url("**/indexes")
    row = page.locator('#indexes-table tr[data-index="support/kb"]')
    assert row.locator("td.num").nth(2).inner_text() == "2"  # the newest version's rows
    page.click('#indexes-table a:text-is("support/kb")')
    page.wait_for_url("**/indexes/support/kb")
    assert page.locator("#versions-table tbody tr").count() == 2
    page.fill("#q", "how long do refunds take")
    page.press("#q", "Enter")
    page.wait_for_selector("#hits-table")
    assert page.locator("#hits-table tbody tr").first.get_attribute("data-hit") == "refund"
    assert page.locator('#hits-table tr[data-hit="pwd"]').count() == 0
    page.click('#versions-table a:text-is("v1")')
    page.wait_for_url("**version=1*")
    assert "Search v1" in page.locator("#search h2").inner_text()
    page.fill("#q", "password")
    page.press("#q", "Enter")
    page.wait_for_selector("#hits-table")
    assert page.locator("#hits-table tbody tr").first.get_attribute("data-hit") == "pwd"
    page.click('header nav a:text-is("Evaluations")')
    page.wait_for_url("**/evaluations")
    assert "No evaluations yet" in page.locator("main").inner_text()
    assert tab.errors == []
