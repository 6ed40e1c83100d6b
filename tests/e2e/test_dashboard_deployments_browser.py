"""The deployment pages in a real browser: the system Chromium, driven by Playwright, against a real server.

Opens the deployments list, follows the canary deployment to its page, checks that uPlot drew the four
charts, then rolls the canary back with the Rollback button (declining the confirmation first, then
accepting it): the page comes back with all traffic on the baseline. A second rollback has nothing to
go back to and says so on the page. No console errors along the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.e2e import test_dashboard_browser as runs_pages
from tests.e2e.test_dashboard_browser import Tab, assert_charts_drawn
from tests.server.test_dashboard_deployments import DEP, MODEL, Scenario, seed_deployments

pytestmark = pytest.mark.browser

browser = runs_pages.browser  # the system Chromium, and a tab that records console errors
tab = runs_pages.tab


@dataclass
class Site:
    base: str
    sc: Scenario


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import os

    from arsenale.server.app import create_app

    root = tmp_path_factory.mktemp("deployments")
    uri, artifacts = f"sqlite:///{root / 'arsenale.db'}", str(root / "artifacts")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse isolation fixture has not run yet
        for key in [k for k in os.environ if k.startswith("ARSENALE_")]:
            mp.delenv(key)
        mp.setenv("ARSENALE_HOME", str(root / ".arsenale"))
        mp.setenv("ARSENALE_URI", uri)
        mp.setenv("ARSENALE_ARTIFACTS", artifacts)
        sc = seed_deployments(uri, artifacts)

    with LiveServer(create_app(sc.alice)) as server:
        yield Site(server.url, sc)


def routes(page: Any) -> list[str]:
    return [" ".join(t.split()) for t in page.locator("#routes-table tbody tr").all_inner_texts()]


def test_charts_then_rollback_with_confirmation(site: Site, tab: Tab) -> None:
    page: Any = tab.page
    page.goto(f"{site.base}/deployments")
    page.click(f'#deployments-table a:text-is("{DEP}")')
    page.wait_for_url(f"**/deployments/{DEP}")

    # requests, error rate and p99 per version over the last hour, and the traffic split over time
    assert_charts_drawn(page, expected=4)
    legend = page.locator("#chart-requests .u-legend").inner_text()
    assert f"{MODEL} v1" in legend and f"{MODEL} v2" in legend
    assert routes(page) == [f"{MODEL} v1 50%", f"{MODEL} v2 50%"]
    assert page.locator("#canary-steps .step-current").inner_text().split()[0] == "50%"
    assert page.locator("#decisions-table tbody tr").count() == 2

    # Declining the confirmation leaves everything as it was.
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("#rollback-button")
    page.wait_for_timeout(300)
    assert dialogs and f"Roll back {DEP} from revision 3" in dialogs[0]
    assert page.url == f"{site.base}/deployments/{DEP}"
    assert site.sc.alice.deployments.get(DEP).revision == 3

    # Accepting it rolls the canary back: all traffic on the baseline again, as revision 4.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rollback-button")
    page.wait_for_url(f"**/deployments/{DEP}?rolled_back=4")
    assert routes(page) == [f"{MODEL} v1 100%"]
    notice = page.locator("#rollback-notice")
    assert notice.is_visible() and "revision 4 restored the policy of revision 1" in notice.inner_text()
    first = page.locator("#revisions-table tbody tr").first
    assert "rolled back from the dashboard" in first.inner_text() and "rollback to r1" in first.inner_text()
    assert_charts_drawn(page, expected=4)
    assert site.sc.alice.deployments.get(DEP).revision == 4
    assert tab.errors == []

    # Once more: nothing earlier to go back to, and the page says so instead of an error page.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rollback-button")
    conflict = page.locator("#rollback-conflict")
    conflict.wait_for()
    assert "has no earlier policy to roll back to" in conflict.inner_text()
    assert routes(page) == [f"{MODEL} v1 100%"]
    assert site.sc.alice.deployments.get(DEP).revision == 4
    # the only console message allowed is the browser's note of the 409 answer itself
    assert all("409" in e for e in tab.errors), tab.errors
