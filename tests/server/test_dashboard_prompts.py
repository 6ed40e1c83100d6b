"""The prompt registry's dashboard pages: the list, one prompt with its versions, labels, the selected template
and an escaped diff with added and removed lines marked; hostile text everywhere stays text."""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from arsenale.platform import Client
from arsenale.server.app import create_app
from arsenale.server.dashboard_prompts import diff_lines

EVIL = "<img src=x onerror=alert(1)>"
EVIL_NAME = "<img src=y onerror=alert(2)>"


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[TestClient, Client]]:
    local = Client(f"sqlite:///{tmp_path / 'db.sqlite'}", artifacts=str(tmp_path / "artifacts"))
    api = local.prompts
    api.register("support-answer", "Answer using {{ context }}:\n{{ question }}\n", model="gpt-x",
                 params={"temperature": 0.2}, description="answers support tickets")
    api.register("support-answer", "Answer briefly using {{ context }}:\n{{ question }}\n", model="gpt-x",
                 params={"temperature": 0.5})
    api.set_label("support-answer", "production", 1)
    api.register(EVIL_NAME, f"{EVIL} {{{{ x }}}}\n", model=EVIL, params={EVIL: EVIL}, description=EVIL)
    api.register(EVIL_NAME, f"</pre>{EVIL}\n{{{{ x }}}}\n", model=EVIL, params={EVIL: EVIL})
    with TestClient(create_app(local), raise_server_exceptions=False) as test_client:
        yield test_client, local


def test_the_list_and_one_prompt_with_its_diff(seeded: tuple[TestClient, Client]) -> None:
    web, _ = seeded
    page = web.get("/prompts")
    assert page.status_code == 200
    assert 'href="/prompts/support-answer"' in page.text and "answers support tickets" in page.text
    assert re.search(r"production<span class=\"alias-v\">v1</span>", page.text)
    assert 'href="/prompts"' in web.get("/").text  # in the nav
    one = web.get("/prompts/support-answer")
    assert one.status_code == 200
    assert 'data-version="2"' in one.text and 'data-version="1"' in one.text
    assert "Template of v2" in one.text and htmllib.escape("Answer briefly using {{ context }}:") in one.text
    # The default diff is the one before the newest → the newest, with its lines marked.
    assert '<span class="diff-del">-Answer using {{ context }}:</span>' in one.text
    assert '<span class="diff-add">+Answer briefly using {{ context }}:</span>' in one.text
    assert "params.temperature" in one.text
    chosen = web.get("/prompts/support-answer", params={"version": "1", "a": "2", "b": "1"})
    assert "Template of v1" in chosen.text
    assert '<span class="diff-add">+Answer using {{ context }}:</span>' in chosen.text
    same = web.get("/prompts/support-answer", params={"a": "1", "b": "production"})
    assert "The two versions are identical" in same.text


def test_hostile_text_is_escaped(seeded: tuple[TestClient, Client]) -> None:
    web, _ = seeded
    listing = web.get("/prompts").text
    assert EVIL_NAME not in listing and htmllib.escape(EVIL_NAME) in listing
    page = web.get("/prompts/" + quote(EVIL_NAME, safe=""))
    assert page.status_code == 200
    assert EVIL not in page.text and EVIL_NAME not in page.text
    assert "</pre><img" not in page.text and "&lt;/pre&gt;" in page.text
    assert '<span class="diff-add">+&lt;/pre&gt;&lt;img' in page.text


def test_unknown_prompts_and_versions_are_404_pages(seeded: tuple[TestClient, Client]) -> None:
    web, _ = seeded
    for path, params in (("/prompts/nope", {}), ("/prompts/support-answer", {"version": "9"}),
                         ("/prompts/support-answer", {"a": "1", "b": "staging"})):
        page = web.get(path, params=params)
        assert page.status_code == 404 and "Not found" in page.text and "Traceback" not in page.text
    bad = web.get("/prompts/support-answer", params={"version": "x"})
    assert bad.status_code == 400 and "Traceback" not in bad.text


def test_diff_lines_classify_each_line() -> None:
    kinds = [line.kind for line in diff_lines("--- a\n+++ b\n@@ -1 +1 @@\n-old\n+new\n same\n")]
    assert kinds == ["file", "file", "hunk", "del", "add", "ctx"]
