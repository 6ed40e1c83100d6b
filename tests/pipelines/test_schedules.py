"""Schedules: cron ticks and dataset versions, each run exactly once under a database lease."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from arsenale.errors import InvalidInput
from arsenale.pipelines.schedules import Scheduler, load_pipeline, next_tick, schedule
from arsenale.pipelines.service import PipelineService
from arsenale.platform import Client
from arsenale.store import tables
from arsenale.store.db import dispose_all, write

REF = "tests.pipelines.example_pipelines:scheduled"
T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z, a fixed clock
MINUTE = 60_000


def test_next_tick_and_bad_cron() -> None:
    assert next_tick("0 3 * * *", T0) == T0 - 5 * 3_600_000 + 24 * 3_600_000  # 03:00 the next day
    assert next_tick("* * * * *", T0) == T0 + MINUTE
    with pytest.raises(InvalidInput, match="not a cron expression"):
        next_tick("every day", T0)


def test_bad_refs_are_invalid(pclient: Client) -> None:
    for ref in ("no_colon", "a:b:c", "tests.pipelines.example_pipelines:nope", "tests.pipelines.example_pipelines:source"):
        with pytest.raises(InvalidInput):
            load_pipeline(ref)
    with pytest.raises(InvalidInput, match="cron"):
        schedule(REF, "61 * * * *", client=pclient)
    assert PipelineService.from_client(pclient).list_schedules() == []


def test_a_due_cron_schedule_runs_once_per_tick(pclient: Client) -> None:
    svc = PipelineService.from_client(pclient)
    s = svc.create_schedule(REF, "*/5 * * * *", params={"n": 4}, now=T0)
    assert s.next_run_time == T0 + 5 * MINUTE
    sched = Scheduler(svc)
    assert sched.tick(T0 + MINUTE) == []  # not due yet
    results = sched.tick(T0 + 5 * MINUTE + 1)
    assert [(r.schedule_id, r.status) for r in results] == [(s.schedule_id, "succeeded")]
    run = svc.get_run(results[0].pipeline_run_id or "")
    assert run.output("total") == (0 + 1 + 2 + 3) * 2 + (0 + 1 + 2 + 3) * 3
    assert run.trigger is not None and run.trigger.startswith("cron:*/5 * * * *@")
    assert sched.tick(T0 + 5 * MINUTE + 2) == []  # the same tick does not run twice
    after = svc.list_schedules()[0]
    assert after.next_run_time == T0 + 10 * MINUTE and after.lease_until == 0
    assert after.last_pipeline_run_id == run.pipeline_run_id
    # After downtime it runs once, not once per missed tick.
    assert len(sched.tick(T0 + 60 * MINUTE)) == 1
    assert svc.list_schedules()[0].next_run_time == T0 + 65 * MINUTE


def _tick_in_child(uri: str, artifacts: str, now: int, barrier: Any, out: Any) -> None:
    dispose_all()  # a forked child must not reuse the parent's connections
    svc = PipelineService.from_client(Client(uri, artifacts=artifacts))
    sched = Scheduler(svc)
    barrier.wait(timeout=60)
    out.put([(r.schedule_id, r.pipeline_run_id, r.status) for r in sched.tick(now)])


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_two_scheduler_processes_never_run_the_same_tick_twice(store_uri: str, tmp_path: Path,
                                                               start_method: str) -> None:
    artifacts = str(tmp_path / "artifacts")
    svc = PipelineService.from_client(Client(store_uri, artifacts=artifacts))
    s = svc.create_schedule(REF, "* * * * *", now=T0)
    ctx = multiprocessing.get_context(start_method)
    barrier, out = ctx.Barrier(2), ctx.Queue()
    now = (s.next_run_time or 0) + 1
    procs = [ctx.Process(target=_tick_in_child, args=(store_uri, artifacts, now, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ran = [r for batch in results for r in batch]
    assert len(ran) == 1 and ran[0][2] == "succeeded", results
    runs = svc.list_runs()
    assert [r.pipeline_run_id for r, _ in runs] == [ran[0][1]]
    assert svc.list_schedules()[0].next_run_time == s.next_run_time + MINUTE  # type: ignore[operator]


def _add_dataset_version(client: Client, name: str, version: int, status: str = "published") -> None:
    from arsenale.store.db import get_engine

    engine = get_engine(client.uri)
    with write(engine) as conn:
        if version == 1:
            conn.execute(insert(tables.datasets).values(name=name, creation_time=T0, last_update_time=T0,
                                                        next_version=2))
        conn.execute(insert(tables.dataset_versions).values(
            name=name, version=version, digest=f"{version:064x}", format="parquet", files="{}", rows=1, columns=1,
            schema="{}", profile="{}", validation=None, status=status, source=None, created_by="t",
            creation_time=T0))


def test_a_new_dataset_version_triggers_a_run(pclient: Client) -> None:
    svc = PipelineService.from_client(pclient)
    _add_dataset_version(pclient, "transactions", 1)
    s = svc.create_schedule(REF, None, trigger_dataset="transactions", now=T0)
    assert s.last_dataset_version == 1 and s.next_run_time is None
    sched = Scheduler(svc)
    assert sched.tick(T0 + MINUTE) == []  # no new version since the schedule was made
    _add_dataset_version(pclient, "transactions", 2, status="rejected")
    assert sched.tick(T0 + 2 * MINUTE) == []  # a rejected version is not data to train on
    _add_dataset_version(pclient, "transactions", 3)
    results = sched.tick(T0 + 2 * MINUTE)
    assert [(r.trigger, r.status) for r in results] == [("dataset:transactions@3", "succeeded")]
    assert sched.tick(T0 + 3 * MINUTE) == []
    assert svc.list_schedules()[0].last_dataset_version == 3
