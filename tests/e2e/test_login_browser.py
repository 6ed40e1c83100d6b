"""Logging in to a server with auth, in a real browser (the system Chromium, driven by Playwright): a page
asked for without a session leads to the login form and back; a wrong token stays on the form with its
reason; the top bar names who is logged in, and logging out (a form carrying its CSRF value) ends it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.e2e import test_dashboard_browser as runs_pages
from tests.e2e.test_dashboard_browser import Tab

pytestmark = pytest.mark.browser

browser = runs_pages.browser
tab = runs_pages.tab


@dataclass
class Site:
    base: str
    token: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import os

    from arsenale.platform import Client
    from arsenale.server.app import create_app

    root = tmp_path_factory.mktemp("login")
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("ARSENALE_")]:
            mp.delenv(key)
        mp.setenv("ARSENALE_HOME", str(root / ".arsenale"))
        client = Client(f"sqlite:///{root / 'arsenale.db'}", artifacts=str(root / "artifacts"))
        _, token = client.tokens.create("ana", role="viewer")
        with LiveServer(create_app(client, auth=True)) as server:
            yield Site(server.url, token)


def test_login_then_logout(site: Site, tab: Tab) -> None:
    page: Any = tab.page
    page.goto(f"{site.base}/models")
    page.wait_for_url("**/login?next=/models")
    page.fill("#token", "ars_wrong")
    page.click("button[type=submit]")
    assert "malformed token" in page.locator(".error").inner_text()
    page.fill("#token", site.token)
    page.click("button[type=submit]")
    page.wait_for_url("**/models")
    assert page.locator("header.topbar .session span").inner_text() == "ana · all projects"
    page.click("header.topbar .session button")
    page.wait_for_url("**/login")
    page.goto(f"{site.base}/models")
    page.wait_for_url("**/login?next=/models")
