"""The registry pages in a real browser: the system Chromium, driven by Playwright, against a real server.

Opens the models list, follows a model to its history, opens a version and follows its lineage graph to the
run that trained it, with no console errors along the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.e2e import test_dashboard_browser as runs_pages
from tests.e2e.test_dashboard_browser import Tab
from tests.server.test_dashboard_registry import MODEL, seed_registry

pytestmark = pytest.mark.browser

browser = runs_pages.browser  # the system Chromium, and a tab that records console errors
tab = runs_pages.tab


@dataclass
class Site:
    base: str
    runs: dict[int, str]  # version -> run id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import os

    from arsenale.server.app import create_app

    home = tmp_path_factory.mktemp("registry") / ".arsenale"
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse isolation fixture has not run yet
        for key in [k for k in os.environ if k.startswith("ARSENALE_")]:
            mp.delenv(key)
        mp.setenv("ARSENALE_HOME", str(home))
        reg = seed_registry()

    with LiveServer(create_app(reg.client)) as server:
        yield Site(server.url, reg.runs)


def test_models_to_history_to_version_lineage_to_run(site: Site, tab: Tab) -> None:
    page: Any = tab.page
    page.goto(f"{site.base}/models")
    page.click(f'#models-table a:text-is("{MODEL}")')
    page.wait_for_url(f"**/models/{MODEL}")

    # The history says who moved the champion alias, from which version to which, and why.
    move = page.locator("#history tr", has_text="v2 wins the shadow week on AUC")
    assert move.is_visible()
    assert "bob" in move.inner_text() and "@champion" in move.inner_text()
    assert page.locator("#history tr[data-kind='register']").count() == 2

    page.click('#versions-table a:text-is("v2")')
    page.wait_for_url(f"**/models/{MODEL}/versions/2")
    graph = page.locator("#lineage")
    assert graph.is_visible()
    for kind in ("Model version", "Run", "Data", "Code", "Environment"):
        assert graph.locator(".lin-kind", has_text=kind).first.is_visible()
    # the reference profile draws one histogram per feature (and the label)
    assert page.locator("#profile svg.spark").count() == 6
    assert page.locator("#profile svg.spark rect").first.bounding_box()["height"] > 0

    run_link = graph.locator("a.lin-run-link")
    assert run_link.get_attribute("href") == f"/runs/{site.runs[2]}"
    run_link.click()
    page.wait_for_url(f"**/runs/{site.runs[2]}")
    back = page.locator("a.model-version-link")
    assert back.inner_text() == f"{MODEL} v2"
    page.wait_for_selector(".chart .u-wrap canvas")  # the run page's charts drew too

    assert tab.errors == []
