"""Many processes opening one new store at once: exactly one migrates it, none fails."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

from arsenale.store.db import get_engine
from arsenale.store.migrate import current_revision, head_revision


def _open(uri: str, start: Any, out: Any) -> None:
    start.wait(30)
    try:
        out.put(current_revision(get_engine(uri)))
    except Exception as exc:  # reported to the test rather than lost in a child's stderr
        out.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_first_open_migrates_once(store_uri: str) -> None:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(store_uri, start, out)) for _ in range(8)]
    for p in procs:
        p.start()
    start.set()
    answers = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert answers == [head_revision()] * len(procs)
    assert current_revision(get_engine(store_uri)) == head_revision()
