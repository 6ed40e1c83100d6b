"""SQL for experiment tracking: experiments, runs, params, tags, metrics, artifact rows.

Rows that belong together are written in one transaction. Metric points take a
bulk path (executemany on SQLite, COPY on PostgreSQL) because a tracking store
lives or dies by how fast it swallows points.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    Text,
    and_,
    case,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from arsenale.errors import Conflict, NotFound
from arsenale.security.projects import current, home, in_scope, visible_row
from arsenale.store import audit as audit_sql
from arsenale.store.audit import AuditRecord
from arsenale.store.db import in_chunks, read, write
from arsenale.store.search_sql import compile_filter, order_by_clauses
from arsenale.store.tables import (
    artifacts,
    experiment_tags,
    experiments,
    latest_metrics,
    metric_chunks,
    params,
    runs,
    tags,
)

_IN_CHUNK = 500
_I8 = np.dtype("<i8")
_F8 = np.dtype("<f8")
CHUNK_POINTS = 100_000


def chunk_points(points: Sequence[tuple[str, float, int, int]]) -> list[tuple[str, Any, Any, Any]]:
    """Group points by metric key into (key, steps, values, timestamps) little-endian arrays."""
    n = len(points)
    keys = list(map(itemgetter(0), points))  # map/itemgetter: zip(*points) is 10x slower at 1M points
    v = np.fromiter(map(itemgetter(1), points), dtype=_F8, count=n)
    s = np.fromiter(map(itemgetter(2), points), dtype=_I8, count=n)
    t = np.fromiter(map(itemgetter(3), points), dtype=_I8, count=n)
    first = keys[0]
    if keys.count(first) == len(keys):
        groups: list[tuple[str, Any]] = [(first, slice(None))]
    else:
        uniq, inverse = np.unique(np.array(keys, dtype=object), return_inverse=True)
        groups = [(str(k), np.flatnonzero(inverse == i)) for i, k in enumerate(uniq)]
    out = []
    for key, idx in groups:
        gs, gv, gt = s[idx], v[idx], t[idx]
        for lo in range(0, len(gs), CHUNK_POINTS):
            hi = lo + CHUNK_POINTS
            out.append((key, gs[lo:hi], gv[lo:hi], gt[lo:hi]))
    return out


@lru_cache(maxsize=256)
def _search_query(experiment_ids: tuple[int, ...], expr: Any, order_keys: tuple[Any, ...], view: str,
                  inline: bool, project: str | None) -> Any:
    """The statement for a search, without its page: built once per distinct search (the parsed filter
    is an immutable tree), then paged with offset/limit; SQLAlchemy caches its compiled form.

    With a `project`, the ids of another project's experiments match nothing, as unknown ids do."""
    q = select(_run_json()) if inline else select(runs)
    if project is None:
        q = q.where(runs.c.experiment_id.in_(list(experiment_ids)))
    else:
        q = q.where(runs.c.experiment_id.in_(
            select(experiments.c.experiment_id).where(experiments.c.experiment_id.in_(list(experiment_ids)),
                                                      experiments.c.project == project)))
    if view != "all":
        q = q.where(runs.c.lifecycle_stage == view)
    if expr is not None:
        q = q.where(compile_filter(expr))
    return q.order_by(*order_by_clauses(list(order_keys)))


def _data_objects(pg: bool) -> tuple[Any, Any, Any]:
    """Each run's params, tags and latest metrics as JSON objects built by the database, correlated to
    `runs`: a search page costs a few statements and parses instead of key/value rows by the thousand."""
    agg = func.json_object_agg if pg else func.json_group_object
    # Exact text for floats: PostgreSQL's float8 text is shortest-exact; SQLite's JSON keeps only 15 digits,
    # so it gets 17 significant digits through printf. Non-finite values travel as strings because SQLite's
    # JSON writes infinity in a form JSON parsers refuse.
    v = latest_metrics.c.value
    metric_value = case((latest_metrics.c.is_nan, literal("NaN")), (v == math.inf, literal("Infinity")),
                        (v == -math.inf, literal("-Infinity")),
                        else_=v.cast(Text) if pg else func.printf("%!.17g", v))

    def obj(table: Any, value: Any) -> Any:
        sub = select(agg(table.c.key, value)).where(table.c.run_id == runs.c.run_id).scalar_subquery()
        return func.coalesce(sub, literal_column("'{}'::json")) if pg else func.json(func.coalesce(sub, "{}"))

    return obj(params, params.c.value), obj(tags, tags.c.value), obj(latest_metrics, metric_value)


def _run_json() -> Any:
    """SQLite: one run as the JSON document `Run` validates (info and data)."""
    p, t, m = _data_objects(False)
    c = runs.c
    info = func.json_object("run_id", c.run_id, "experiment_id", c.experiment_id.cast(Text), "run_name", c.name,
                            "status", c.status, "start_time", c.start_time, "end_time", c.end_time,
                            "parent_run_id", c.parent_run_id, "user_id", c.user_id,
                            "lifecycle_stage", c.lifecycle_stage)
    return func.json_object("info", info, "data", func.json_object("params", p, "tags", t, "metrics", m))


def _run_dict(row: Sequence[Any], p: Any, t: Any, m: Any) -> dict[str, Any]:
    rid, exp, name, status, start, end, parent, user, stage = row
    loads = json.loads
    return {"info": {"run_id": rid, "experiment_id": str(exp), "run_name": name, "status": status,
                     "start_time": start, "end_time": end, "parent_run_id": parent, "user_id": user,
                     "lifecycle_stage": stage},
            "data": {"params": (loads(p) if isinstance(p, str) else p) or {},
                     "tags": (loads(t) if isinstance(t, str) else t) or {},
                     "metrics": (loads(m) if isinstance(m, str) else m) or {}}}


def downsample(steps: Any, values: Any, stamps: Any, max_points: int) -> dict[str, list[Any]]:
    """Equal-width step buckets; each keeps its first step, mean, min and max, so spikes survive."""
    lo, hi = int(steps[0]), int(steps[-1])
    width = max(1, -(-(hi - lo + 1) // max_points))
    bucket = (steps - lo) // width
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    finite = np.where(np.isnan(values), 0.0, values)
    counts = np.add.reduceat((~np.isnan(values)).astype(np.int64), starts)
    sums = np.add.reduceat(finite, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    mins = np.fmin.reduceat(values, starts)
    maxs = np.fmax.reduceat(values, starts)
    return {"steps": steps[starts].tolist(), "values": means.tolist(), "timestamps": stamps[starts].tolist(),
            "mins": mins.tolist(), "maxs": maxs.tolist()}


def _run_select(q: Any, run_id: str) -> Any:
    """`q` narrowed to one run; when confined, joined to its experiment so another project's run is absent in
    the same single query (unconfined: the plain primary-key lookup, nothing added to the logging path)."""
    q = q.where(runs.c.run_id == run_id)
    scope = current()
    if scope.confined:
        q = (q.join_from(runs, experiments, runs.c.experiment_id == experiments.c.experiment_id)
             .where(experiments.c.project == scope.home))
    return q


def _upsert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table))


class SqlTrackingStore:
    """Tracking rows in one SQL database, SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite_metric_sql: str | None = None

    # ---- experiments -------------------------------------------------------------------

    def create_experiment(self, name: str, tags: dict[str, str], description: str | None, now: int,
                          audit: AuditRecord) -> int:
        try:
            with write(self.engine) as conn:
                if conn.execute(select(experiments.c.experiment_id).where(experiments.c.name == name)).first():
                    raise Conflict(f"experiment {name!r} already exists", field="name")
                exp_id = conn.execute(
                    insert(experiments).values(name=name, lifecycle_stage="active", description=description,
                                               creation_time=now, last_update_time=now, project=home())
                    .returning(experiments.c.experiment_id)).scalar_one()
                if tags:
                    conn.execute(insert(experiment_tags),
                                 [{"experiment_id": exp_id, "key": k, "value": v} for k, v in tags.items()])
                audit_sql.append(conn, AuditRecord(audit.actor, audit.action, audit.entity_type, str(exp_id),
                                                   {**audit.details, "name": name}), now)
                return int(exp_id)
        except SAIntegrityError:
            raise Conflict(f"experiment {name!r} already exists", field="name") from None

    def _experiment_dicts(self, conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
        ids = [r.experiment_id for r in rows]
        tag_map: dict[int, dict[str, str]] = {i: {} for i in ids}
        for chunk in in_chunks(ids, _IN_CHUNK):
            for t in conn.execute(select(experiment_tags).where(experiment_tags.c.experiment_id.in_(chunk))):
                tag_map[t.experiment_id][t.key] = t.value
        return [{**r._asdict(), "experiment_id": str(r.experiment_id), "tags": tag_map[r.experiment_id]}
                for r in rows]

    def get_experiment(self, experiment_id: int) -> dict[str, Any]:
        with read(self.engine) as conn:
            row = visible_row(conn.execute(select(experiments)
                                           .where(experiments.c.experiment_id == experiment_id)).first())
            if row is None:
                raise NotFound(f"experiment {experiment_id} does not exist", field="experiment_id")
            return self._experiment_dicts(conn, [row])[0]

    def get_experiment_by_name(self, name: str) -> dict[str, Any] | None:
        with read(self.engine) as conn:
            row = visible_row(conn.execute(select(experiments).where(experiments.c.name == name)).first())
            return None if row is None else self._experiment_dicts(conn, [row])[0]

    def list_experiments(self, view: str) -> list[dict[str, Any]]:
        q = select(experiments).where(in_scope(experiments.c.project)).order_by(experiments.c.experiment_id)
        if view != "all":
            q = q.where(experiments.c.lifecycle_stage == view)
        with read(self.engine) as conn:
            return self._experiment_dicts(conn, conn.execute(q).all())

    def set_experiment_lifecycle(self, experiment_id: int, stage: str, expect: str, now: int,
                                 audit: AuditRecord) -> None:
        with write(self.engine) as conn:
            row = visible_row(conn.execute(select(experiments.c.lifecycle_stage, experiments.c.name,
                                                  experiments.c.project)
                                           .where(experiments.c.experiment_id == experiment_id)).first())
            if row is None:
                raise NotFound(f"experiment {experiment_id} does not exist", field="experiment_id")
            if row.lifecycle_stage != expect:
                raise Conflict(f"experiment {experiment_id} is {row.lifecycle_stage}, not {expect}",
                               field="experiment_id")
            conn.execute(update(experiments).where(experiments.c.experiment_id == experiment_id)
                         .values(lifecycle_stage=stage, last_update_time=now))
            conn.execute(update(runs).where(runs.c.experiment_id == experiment_id).values(lifecycle_stage=stage))
            audit_sql.append(conn, AuditRecord(audit.actor, audit.action, audit.entity_type, str(experiment_id),
                                               {**audit.details, "name": row.name}), now)

    # ---- runs --------------------------------------------------------------------------

    def create_run(self, row: dict[str, Any], run_tags: dict[str, str], run_params: dict[str, str]) -> None:
        with write(self.engine) as conn:
            exp = visible_row(conn.execute(select(experiments.c.lifecycle_stage, experiments.c.project)
                                           .where(experiments.c.experiment_id == row["experiment_id"])).first())
            if exp is None:
                raise NotFound(f"experiment {row['experiment_id']} does not exist", field="experiment_id")
            if exp.lifecycle_stage != "active":
                raise Conflict(f"experiment {row['experiment_id']} is deleted; restore it first",
                               field="experiment_id")
            if row.get("parent_run_id") and conn.execute(
                    _run_select(select(runs.c.run_id), row["parent_run_id"])).first() is None:
                raise NotFound(f"parent run {row['parent_run_id']} does not exist", field="parent_run_id")
            conn.execute(insert(runs).values(**row))
            if run_tags:
                conn.execute(insert(tags), [{"run_id": row["run_id"], "key": k, "value": v}
                                            for k, v in run_tags.items()])
            if run_params:
                conn.execute(insert(params), [{"run_id": row["run_id"], "key": k, "value": v}
                                              for k, v in run_params.items()])

    def _run_row(self, conn: Connection, run_id: str) -> Any:
        """The run, or NotFound: also when its experiment is in another project. Every path that takes a
        run id (logging, history, artifacts, and other components checking an id from a request body via
        `require_run`/`get_run`) comes through here."""
        row = conn.execute(_run_select(select(runs), run_id)).first()
        if row is None:
            raise NotFound(f"run {run_id} does not exist", field="run_id")
        return row

    def get_runs(self, conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """Each run row with its params, tags and latest metrics, fetched in three set queries per
        1,000 runs. Rows are unpacked by position: search pages hold thousands of runs."""
        ids = [r[0] for r in rows]
        p_by: dict[str, dict[str, str]] = {i: {} for i in ids}
        t_by: dict[str, dict[str, str]] = {i: {} for i in ids}
        m_by: dict[str, dict[str, float]] = {i: {} for i in ids}
        nan = math.nan
        for chunk in in_chunks(ids, 1000):
            for rid, k, v in conn.execute(select(params.c.run_id, params.c.key, params.c.value)
                                          .where(params.c.run_id.in_(chunk))):
                p_by[rid][k] = v
            for rid, k, v in conn.execute(select(tags.c.run_id, tags.c.key, tags.c.value)
                                          .where(tags.c.run_id.in_(chunk))):
                t_by[rid][k] = v
            for rid, k, v, is_nan in conn.execute(
                    select(latest_metrics.c.run_id, latest_metrics.c.key, latest_metrics.c.value,
                           latest_metrics.c.is_nan).where(latest_metrics.c.run_id.in_(chunk))):
                m_by[rid][k] = nan if is_nan else v
        return [{"info": {"run_id": rid, "experiment_id": str(exp), "run_name": name, "status": status,
                          "start_time": start, "end_time": end, "parent_run_id": parent, "user_id": user,
                          "lifecycle_stage": stage},
                 "data": {"params": p_by[rid], "tags": t_by[rid], "metrics": m_by[rid]}}
                for rid, exp, name, status, start, end, parent, user, stage in rows]

    def require_run(self, run_id: str) -> None:
        """NotFound unless the run exists; one indexed lookup."""
        with read(self.engine) as conn:
            self._run_row(conn, run_id)

    def get_run(self, run_id: str) -> dict[str, Any]:
        with read(self.engine) as conn:
            return self.get_runs(conn, [self._run_row(conn, run_id)])[0]

    def update_run(self, run_id: str, values: dict[str, Any]) -> dict[str, Any]:
        with write(self.engine) as conn:
            self._run_row(conn, run_id)
            if values:
                conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))
            return self.get_runs(conn, [self._run_row(conn, run_id)])[0]

    def set_run_lifecycle(self, run_id: str, stage: str) -> None:
        with write(self.engine) as conn:
            self._run_row(conn, run_id)
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(lifecycle_stage=stage))

    # ---- logging -----------------------------------------------------------------------

    def log_batch(self, run_id: str, points: Sequence[tuple[str, float, int, int]], params_: dict[str, str],
                  tags_: dict[str, str]) -> None:
        """Params, tags and metric points of one run, all or nothing."""
        with write(self.engine) as conn:
            run = self._run_row(conn, run_id)
            if run.lifecycle_stage != "active":
                raise Conflict(f"run {run_id} is deleted; restore it before logging to it", field="run_id")
            if params_:
                self._insert_params(conn, run_id, params_)
            if tags_:
                stmt = _upsert(conn, tags)
                conn.execute(stmt.on_conflict_do_update(index_elements=[tags.c.run_id, tags.c.key],
                                                        set_={"value": stmt.excluded.value}),
                             [{"run_id": run_id, "key": k, "value": v} for k, v in tags_.items()])
            if points:
                chunks = chunk_points(points)
                self._insert_chunks(conn, run_id, chunks)
                self._update_latest(conn, run_id, chunks)

    def _insert_params(self, conn: Connection, run_id: str, new: dict[str, str]) -> None:
        keys = list(new)
        existing = {r.key: r.value for chunk in in_chunks(keys, _IN_CHUNK) for r in conn.execute(
            select(params.c.key, params.c.value).where(params.c.run_id == run_id, params.c.key.in_(chunk)))}
        for k, v in existing.items():
            if new[k] != v:
                raise Conflict(f"param {k!r} was already logged as {v!r}; params are immutable, "
                               f"cannot change it to {new[k]!r}", field="params")
        fresh = [{"run_id": run_id, "key": k, "value": v} for k, v in new.items() if k not in existing]
        if fresh:
            conn.execute(_upsert(conn, params).on_conflict_do_nothing(), fresh)
            # A concurrent writer on PostgreSQL may have won the race with another value.
            for chunk in in_chunks([f["key"] for f in fresh], _IN_CHUNK):
                for r in conn.execute(select(params.c.key, params.c.value)
                                      .where(params.c.run_id == run_id, params.c.key.in_(chunk))):
                    if r.value != new[r.key]:
                        raise Conflict(f"param {r.key!r} was already logged as {r.value!r}; params are "
                                       f"immutable", field="params")

    def _insert_chunks(self, conn: Connection, run_id: str, chunks: list[tuple[str, Any, Any, Any]]) -> None:
        conn.execute(insert(metric_chunks), [
            {"run_id": run_id, "key": key, "n": len(steps), "min_step": int(steps.min()),
             "max_step": int(steps.max()), "steps": steps.tobytes(), "values": values.tobytes(),
             "timestamps": stamps.tobytes()}
            for key, steps, values, stamps in chunks])

    def _update_latest(self, conn: Connection, run_id: str, chunks: list[tuple[str, Any, Any, Any]]) -> None:
        best: dict[str, tuple[float, int, int]] = {}
        for key, steps, values, stamps in chunks:
            i = int(np.lexsort((np.arange(len(steps)), stamps, steps))[-1])  # highest step, then latest, then last
            cand = (float(values[i]), int(steps[i]), int(stamps[i]))
            cur = best.get(key)
            if cur is None or (cand[1], cand[2]) >= (cur[1], cur[2]):
                best[key] = cand
        stmt = _upsert(conn, latest_metrics)
        ex = stmt.excluded
        newer = or_(ex.step > latest_metrics.c.step,
                    and_(ex.step == latest_metrics.c.step, ex.timestamp >= latest_metrics.c.timestamp))
        stmt = stmt.on_conflict_do_update(
            index_elements=[latest_metrics.c.run_id, latest_metrics.c.key],
            set_={"value": ex.value, "is_nan": ex.is_nan, "step": ex.step, "timestamp": ex.timestamp},
            where=newer)
        conn.execute(stmt, [{"run_id": run_id, "key": k, "value": None if math.isnan(v) else v,
                             "is_nan": math.isnan(v), "step": s, "timestamp": t} for k, (v, s, t) in best.items()])

    # ---- metric history ----------------------------------------------------------------

    def get_metric_history(self, run_id: str, key: str, max_points: int | None) -> dict[str, Any]:
        with read(self.engine) as conn:
            self._run_row(conn, run_id)
            rows = conn.execute(select(metric_chunks.c.steps, metric_chunks.c["values"], metric_chunks.c.timestamps)
                                .where(metric_chunks.c.run_id == run_id, metric_chunks.c.key == key)
                                .order_by(metric_chunks.c.id)).all()
        steps = np.concatenate([np.frombuffer(r[0], dtype=_I8) for r in rows]) if rows else np.empty(0, _I8)
        values = np.concatenate([np.frombuffer(r[1], dtype=_F8) for r in rows]) if rows else np.empty(0, _F8)
        stamps = np.concatenate([np.frombuffer(r[2], dtype=_I8) for r in rows]) if rows else np.empty(0, _I8)
        if len(steps) > 1 and not (np.all(steps[1:] >= steps[:-1])):
            order = np.lexsort((stamps, steps))  # by step, then time; stable for equal pairs
            steps, values, stamps = steps[order], values[order], stamps[order]
        total = len(steps)
        if not max_points or total <= max_points:
            return {"key": key, "steps": steps.tolist(), "values": values.tolist(), "timestamps": stamps.tolist(),
                    "downsampled": False, "total_points": total}
        return {"key": key, **downsample(steps, values, stamps, max_points), "downsampled": True,
                "total_points": total}

    # ---- search ------------------------------------------------------------------------

    def search_runs(self, experiment_ids: Sequence[int], expr: Any, order_keys: Sequence[Any], view: str,
                    offset: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """One page of runs matching a parsed filter (see arsenale.tracking.search)."""
        with read(self.engine) as conn:
            pg = conn.dialect.name == "postgresql"
            # In the default order SQLite walks an index and builds the select list only for the rows it
            # returns, so each run's params, tags and metrics come in the same statement. Elsewhere (a sort,
            # or PostgreSQL, which projects the rows an OFFSET skips) they come in a second statement.
            inline = not order_keys and not pg
            scope = current()
            args = (tuple(experiment_ids), expr, tuple(order_keys), view, inline,
                    scope.home if scope.confined else None)
            try:
                q = _search_query(*args)
            except TypeError:  # a hand-built tree holding a list is not hashable: build it uncached
                q = _search_query.__wrapped__(*args)
            rows = conn.execute(q.offset(offset).limit(limit + 1)).all()
            more = len(rows) > limit
            rows = rows[:limit]
            if inline:  # each row is the run as JSON, for the service to parse and validate in one step
                return [r[0] for r in rows], more
            data: dict[str, dict[str, Any]] = {}
            p, t, m = _data_objects(pg)
            agg = func.json_object_agg if pg else func.json_group_object
            doc = agg(runs.c.run_id, (func.json_build_object if pg else func.json_object)("p", p, "t", t, "m", m))
            for chunk in in_chunks([r[0] for r in rows], 1000):
                got = conn.execute(select(doc).where(runs.c.run_id.in_(chunk))).scalar()
                data.update(json.loads(got) if isinstance(got, str) else got or {})
            return [_run_dict(r, data[r[0]]["p"], data[r[0]]["t"], data[r[0]]["m"]) for r in rows], more

    # ---- artifacts ---------------------------------------------------------------------

    def add_artifacts(self, run_id: str, entries: Sequence[tuple[str, str, int]], now: int) -> None:
        with write(self.engine) as conn:
            self._run_row(conn, run_id)
            stmt = _upsert(conn, artifacts)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[artifacts.c.run_id, artifacts.c.path],
                set_={"digest": stmt.excluded.digest, "size": stmt.excluded.size,
                      "created_at": stmt.excluded.created_at}),
                [{"run_id": run_id, "path": p, "digest": d, "size": s, "created_at": now} for p, d, s in entries])

    def artifact_rows(self, run_id: str, prefix: str) -> list[tuple[str, str, int]]:
        with read(self.engine) as conn:
            self._run_row(conn, run_id)
            q = select(artifacts.c.path, artifacts.c.digest, artifacts.c.size).where(artifacts.c.run_id == run_id)
            if prefix:
                # A range instead of LIKE: no wildcard escaping of user paths needed.
                q = q.where(or_(artifacts.c.path == prefix,
                                and_(artifacts.c.path >= prefix + "/", artifacts.c.path < prefix + "0")))
            return [tuple(r) for r in conn.execute(q.order_by(artifacts.c.path))]
