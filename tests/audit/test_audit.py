"""The audit trail: appended in the same transaction as the change, chained, tamper-evident."""

from __future__ import annotations

import multiprocessing as mp

import pytest
from sqlalchemy import delete, update

from arsenale.audit.service import AuditService
from arsenale.errors import InvalidInput
from arsenale.store.db import get_engine, write
from arsenale.store.tables import audit_log


def _append_many(uri: str, worker: int) -> None:
    svc = AuditService(get_engine(uri), f"worker-{worker}")
    for i in range(25):
        svc.record("test.event", "thing", f"{worker}-{i}", {"i": i})


def test_record_list_verify(store_uri: str) -> None:
    svc = AuditService(get_engine(store_uri), "alice")
    first = svc.record("model.promote", "model", "fraud", {"version": 3, "reason": "beats v2"})
    second = svc.record("model.rollback", "model", "fraud", {"version": 2})
    assert first.seq == 1 and second.prev_hash == first.hash and second.actor == "alice"
    assert [e.action for e in svc.entries(entity_id="fraud")] == ["model.promote", "model.rollback"]
    assert svc.entries(action="model.rollback")[0].details == {"version": 2}
    report = svc.verify()
    assert report.ok and report.checked == 2
    with pytest.raises(InvalidInput):
        svc.record("", "model", "x")
    with pytest.raises(InvalidInput):
        svc.record("a", "model", "x", details=["not", "a", "dict"])  # type: ignore[arg-type]
    assert len(svc.entries()) == 2


def test_edited_entry_is_detected(store_uri: str) -> None:
    engine = get_engine(store_uri)
    svc = AuditService(engine, "alice")
    for i in range(5):
        svc.record("experiment.create", "experiment", str(i))
    with write(engine) as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(actor="mallory"))
    report = svc.verify()
    assert not report.ok and report.first_bad_seq == 3 and "altered" in (report.problem or "")


def test_removed_entry_is_detected(store_uri: str) -> None:
    engine = get_engine(store_uri)
    svc = AuditService(engine, "alice")
    for i in range(5):
        svc.record("experiment.create", "experiment", str(i))
    with write(engine) as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
    report = svc.verify()
    assert not report.ok and report.first_bad_seq == 2 and "missing" in (report.problem or "")


def test_concurrent_writers_keep_one_chain(store_uri: str) -> None:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(store_uri, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    svc = AuditService(get_engine(store_uri), "check")
    report = svc.verify()
    assert report.ok and report.checked == 100
