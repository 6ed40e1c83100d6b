"""SQL for pipelines: pipeline runs, step runs (which double as the step cache's index), schedules.

A schedule is claimed with one conditional UPDATE … RETURNING that both takes the lease and moves the
trigger forward (next_run_time, or the last dataset version seen). Two schedulers racing for the same tick
both issue it; the database lets exactly one match (SQLite serialises writers, PostgreSQL re-checks the
WHERE clause after the row lock), so a tick runs at most once even if the winner dies holding the lease.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, func, insert, or_, select, update

from arsenale.errors import NotFound
from arsenale.store import tables
from arsenale.store.db import read, write
from arsenale.store.tables import pipeline_runs, schedules, step_runs

OK_STATUSES = ("succeeded", "cached")


def _step_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["upstream"] = json.loads(d["upstream"])
    return d


def _run_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["params"] = json.loads(d["params"])
    return d


def _schedule_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["params"] = json.loads(d["params"])
    return d


class SqlPipelineStore:
    """Pipeline rows in the metadata database, SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- runs --------------------------------------------------------------------------

    def create_run(self, run: dict[str, Any], steps: Sequence[dict[str, Any]]) -> None:
        """The run and a row per step (all pending), in one transaction."""
        with write(self.engine) as conn:
            conn.execute(insert(pipeline_runs).values(**{**run, "params": json.dumps(run["params"])}))
            conn.execute(insert(step_runs), [{**s, "upstream": json.dumps(s["upstream"])} for s in steps])

    def update_steps(self, pipeline_run_id: str, changes: dict[str, dict[str, Any]]) -> None:
        """Several steps' new values in one transaction (step name → column values)."""
        if not changes:
            return
        with write(self.engine) as conn:
            for name, values in changes.items():
                conn.execute(update(step_runs).where(step_runs.c.pipeline_run_id == pipeline_run_id,
                                                     step_runs.c.name == name).values(**values))

    def finish_run(self, pipeline_run_id: str, values: dict[str, Any]) -> None:
        with write(self.engine) as conn:
            conn.execute(update(pipeline_runs).where(pipeline_runs.c.pipeline_run_id == pipeline_run_id)
                         .values(**values))

    def set_run_id(self, pipeline_run_id: str, run_id: str) -> None:
        self.finish_run(pipeline_run_id, {"run_id": run_id})

    def get_run(self, pipeline_run_id: str) -> dict[str, Any]:
        with read(self.engine) as conn:
            row = conn.execute(select(pipeline_runs)
                               .where(pipeline_runs.c.pipeline_run_id == pipeline_run_id)).first()
            if row is None:
                raise NotFound(f"pipeline run {pipeline_run_id} does not exist", field="pipeline_run_id")
            steps = conn.execute(select(step_runs).where(step_runs.c.pipeline_run_id == pipeline_run_id)
                                 .order_by(step_runs.c.layer, step_runs.c.start_time, step_runs.c.name)).all()
            return {**_run_dict(row), "steps": [_step_dict(s) for s in steps]}

    def list_runs(self, name: str | None, limit: int) -> list[dict[str, Any]]:
        q = select(pipeline_runs).order_by(pipeline_runs.c.start_time.desc(),
                                           pipeline_runs.c.pipeline_run_id).limit(limit)
        if name is not None:
            q = q.where(pipeline_runs.c.name == name)
        with read(self.engine) as conn:
            runs = [_run_dict(r) for r in conn.execute(q)]
            ids = [r["pipeline_run_id"] for r in runs]
            counts: dict[str, dict[str, int]] = {i: {} for i in ids}
            if ids:
                for rid, status, n in conn.execute(
                        select(step_runs.c.pipeline_run_id, step_runs.c.status, func.count())
                        .where(step_runs.c.pipeline_run_id.in_(ids))
                        .group_by(step_runs.c.pipeline_run_id, step_runs.c.status)):
                    counts[rid][status] = int(n)
            return [{**r, "step_counts": counts[r["pipeline_run_id"]]} for r in runs]

    def find_cached(self, cache_keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """cache key → the newest successful step row with that key (its output digest and format)."""
        out: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(cache_keys))
        if not keys:
            return out
        with read(self.engine) as conn:
            for i in range(0, len(keys), 500):
                rows = conn.execute(
                    select(step_runs.c.cache_key, step_runs.c.output_digest, step_runs.c.output_format,
                           step_runs.c.output_size, step_runs.c.pipeline_run_id, step_runs.c.cached_from,
                           step_runs.c.end_time)
                    .where(step_runs.c.cache_key.in_(keys[i:i + 500]), step_runs.c.status.in_(OK_STATUSES),
                           step_runs.c.output_digest.is_not(None))
                    .order_by(step_runs.c.end_time.desc())).all()
                for r in rows:
                    out.setdefault(r.cache_key, dict(r._mapping))
        return out

    # ---- schedules ---------------------------------------------------------------------

    def create_schedule(self, row: dict[str, Any]) -> None:
        with write(self.engine) as conn:
            conn.execute(insert(schedules).values(**{**row, "params": json.dumps(row["params"])}))

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        with read(self.engine) as conn:
            row = conn.execute(select(schedules).where(schedules.c.schedule_id == schedule_id)).first()
        if row is None:
            raise NotFound(f"schedule {schedule_id} does not exist", field="schedule_id")
        return _schedule_dict(row)

    def list_schedules(self) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            return [_schedule_dict(r) for r in conn.execute(
                select(schedules).order_by(schedules.c.creation_time, schedules.c.schedule_id))]

    def delete_schedule(self, schedule_id: str) -> None:
        with write(self.engine) as conn:
            if conn.execute(delete(schedules).where(schedules.c.schedule_id == schedule_id)).rowcount == 0:
                raise NotFound(f"schedule {schedule_id} does not exist", field="schedule_id")

    def claim_cron(self, schedule_id: str, due: int, next_run_time: int, owner: str, now: int,
                   lease_until: int) -> dict[str, Any] | None:
        """Take the lease on the tick due at `due` and move the schedule to `next_run_time`; None when
        another scheduler already took it (or holds a live lease)."""
        stmt = (update(schedules)
                .where(schedules.c.schedule_id == schedule_id, schedules.c.enabled.is_(True),
                       schedules.c.next_run_time == due, schedules.c.next_run_time <= now,
                       schedules.c.lease_until < now)
                .values(next_run_time=next_run_time, lease_owner=owner, lease_until=lease_until)
                .returning(*schedules.c))
        with write(self.engine) as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _schedule_dict(row)

    def claim_dataset(self, schedule_id: str, seen: int | None, version: int, owner: str, now: int,
                      lease_until: int) -> dict[str, Any] | None:
        """Take the lease for dataset version `version`, if the schedule still had `seen` as its last."""
        last = schedules.c.last_dataset_version
        stmt = (update(schedules)
                .where(schedules.c.schedule_id == schedule_id, schedules.c.enabled.is_(True),
                       last.is_(None) if seen is None else last == seen, schedules.c.lease_until < now)
                .values(last_dataset_version=version, lease_owner=owner, lease_until=lease_until)
                .returning(*schedules.c))
        with write(self.engine) as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _schedule_dict(row)

    def release(self, schedule_id: str, owner: str, values: dict[str, Any]) -> None:
        """Give the lease back (only if still ours) and record the run it started."""
        with write(self.engine) as conn:
            conn.execute(update(schedules)
                         .where(schedules.c.schedule_id == schedule_id, schedules.c.lease_owner == owner)
                         .values(lease_owner=None, lease_until=0, **values))

    def due_schedules(self, now: int) -> list[dict[str, Any]]:
        """Enabled schedules whose cron tick is due or that watch a dataset, and hold no live lease."""
        q = (select(schedules).where(schedules.c.enabled.is_(True), schedules.c.lease_until < now,
                                     or_(schedules.c.next_run_time <= now,
                                         schedules.c.trigger_dataset.is_not(None)))
             .order_by(schedules.c.next_run_time, schedules.c.schedule_id))
        with read(self.engine) as conn:
            return [_schedule_dict(r) for r in conn.execute(q)]

    # ---- datasets (dataset triggers) -----------------------------------------------------

    def latest_dataset_version(self, name: str) -> int | None:
        """The newest usable version of dataset `name` (a rejected version triggers nothing)."""
        dv = tables.dataset_versions
        q = select(func.max(dv.c.version)).where(dv.c.name == name, dv.c.status != "rejected")
        with read(self.engine) as conn:
            v = conn.execute(q).scalar()
        return None if v is None else int(v)
