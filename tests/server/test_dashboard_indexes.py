"""The vector indexes' dashboard pages (the list, one index with its versions and a text search where the server can
embed) and the evaluations (their own page and the prompt page's card), on SQLite and PostgreSQL; hostile text
stays text, bad parameters are 4xx pages, never 500s."""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import arsenale.llm.eval as ev
from arsenale.llm import vectors
from arsenale.llm.vectors import VectorIndex
from arsenale.platform import Client
from arsenale.server.app import create_app

EVIL = "<img src=x onerror=alert(1)>"
EVIL_NAME = "team/<b>kb</b>"


def _letters(texts: list[str]) -> list[list[float]]:
    return [[float(t.count(c)) for c in "aeiou"] for t in texts]


@pytest.fixture
def seeded(store_uri: str, tmp_path: Path) -> Iterator[tuple[TestClient, Client]]:
    vectors._loaded.clear()
    local = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    kb = VectorIndex("kb", client=local)
    kb.add([{"id": "refund", "text": "Refunds take five business days.", "metadata": {"topic": EVIL}},
            {"id": "pwd", "text": f"Reset your password. {EVIL}"}])
    kb.delete(["pwd"])
    VectorIndex("vowels", embedder=_letters, metric="dot", client=local).add(["aaa", "eee"])
    VectorIndex(EVIL_NAME, client=local).add([EVIL])
    local.datasets.register("capitals", pd.DataFrame({"question": ["Capital of France?", "Capital of Italy?"],
                                                      "expected": ["Paris", "Rome"]}))
    local.prompts.register("qa", template="Answer: {{ question }}")
    local.prompts.register("qa", template="Answer briefly: {{ question }}")
    local.prompts.register("other", template="{{ question }}")
    model = ev.DeterministicModel(lambda prompt: "Paris")
    ev.evaluate("qa/1", "capitals", model=model, scorers=[ev.exact_match], run_name="qa-v1", client=local)
    ev.compare("qa/1", "qa/2", "capitals", model=model, scorers=[ev.exact_match], run_name="v1-vs-v2",
               client=local, resamples=100)
    ev.evaluate("other/1", "capitals", model=model, scorers=[ev.token_f1], run_name="other-v1", client=local)
    with TestClient(create_app(local), raise_server_exceptions=False) as test_client:
        yield test_client, local


def test_the_list_and_one_index_with_a_text_search(seeded: tuple[TestClient, Client]) -> None:
    web, _ = seeded
    assert 'href="/indexes"' in web.get("/").text and 'href="/evaluations"' in web.get("/").text  # in the nav
    page = web.get("/indexes")
    assert page.status_code == 200
    assert 'href="/indexes/kb"' in page.text and 'href="/indexes/vowels"' in page.text
    assert "hashing_embedder(256)" in page.text and "_letters" in page.text
    row = re.search(r'<tr data-index="kb">(.*?)</tr>', page.text, re.DOTALL)
    assert row is not None and ">v2</a>" in row.group(1)
    one = web.get("/indexes/kb")
    assert one.status_code == 200
    assert 'data-version="1"' in one.text and 'data-version="2"' in one.text and "Search v2" in one.text
    found = web.get("/indexes/kb", params={"q": "how long do refunds take", "k": "3"})
    assert found.status_code == 200 and 'data-hit="refund"' in found.text and 'data-hit="pwd"' not in found.text
    old = web.get("/indexes/kb", params={"q": "password", "version": "1"})
    assert "Search v1" in old.text and 'data-hit="pwd"' in old.text
    foreign = web.get("/indexes/vowels", params={"q": "aaa"})
    assert foreign.status_code == 200 and 'id="no-text-search"' in foreign.text and "data-hit" not in foreign.text


def test_evaluations_page_and_the_prompt_card(seeded: tuple[TestClient, Client]) -> None:
    web, _ = seeded
    page = web.get("/evaluations")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-run="[0-9a-f]{32}">', page.text)
    assert len(rows) == 5  # qa-v1, the comparison and its two children, other-v1
    assert "qa-v1" in page.text and "v1-vs-v2" in page.text and "comparison" in page.text
    assert re.search(r"exact_match <b>0.5</b>", page.text) and re.search(r"exact_match\.diff <b>0</b>", page.text)
    assert "(2 rows)" in page.text and "eval.latency_ms" not in page.text
    only = web.get("/evaluations", params={"prompt": "other"})
    assert len(re.findall(r"<tr data-run=", only.text)) == 1 and "other-v1" in only.text
    assert "No evaluations yet" in web.get("/evaluations", params={"prompt": "nope"}).text
    for hostile in ("o'ther", "%", "q_", "qa\\", "x" * 5000):  # user text never becomes filter syntax
        answer = web.get("/evaluations", params={"prompt": hostile})
        assert answer.status_code in (200, 400) and "data-run" not in answer.text and "Traceback" not in answer.text
    card = web.get("/prompts/qa")
    assert card.status_code == 200 and 'id="evaluations"' in card.text
    assert "qa-v1" in card.text and "other-v1" not in card.text and 'href="/evaluations?prompt=qa"' in card.text


def test_hostile_text_is_escaped(seeded: tuple[TestClient, Client]) -> None:
    web, _ = seeded
    listing = web.get("/indexes").text
    assert "<b>kb</b>" not in listing and htmllib.escape(EVIL_NAME) in listing
    page = web.get("/indexes/" + quote(EVIL_NAME, safe=""))
    assert page.status_code == 200 and EVIL not in page.text
    hits = web.get("/indexes/kb", params={"q": "password refunds", "version": "1", "k": "2"}).text
    assert EVIL not in hits and htmllib.escape(EVIL) in hits
    assert EVIL not in web.get("/indexes/" + quote(EVIL_NAME, safe=""), params={"q": "img"}).text


def test_unknown_indexes_and_bad_parameters_are_4xx_pages(seeded: tuple[TestClient, Client]) -> None:
    web, _ = seeded
    for path, params, status in (("/indexes/nope", {}, 404), ("/indexes/kb", {"version": "9"}, 404),
                                 ("/indexes/kb", {"version": "x"}, 400), ("/indexes/kb", {"q": "a", "k": "0"}, 400),
                                 ("/indexes/kb", {"q": "a", "k": "many"}, 400),
                                 ("/indexes/..%2F..%2Fetc%2Fpasswd", {}, 404)):
        page = web.get(path, params=params)
        assert page.status_code == status, (path, params, page.text[:300])
        assert "Traceback" not in page.text
