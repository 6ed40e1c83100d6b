"""SQL for LLM traces, spans, scores and prices. Each function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from arsenale.security.projects import home, in_scope, visible_row
from arsenale.store.db import in_chunks
from arsenale.store.tables import llm_prices, llm_scores, llm_spans, llm_traces


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table))


def ensure_traces(conn: Connection, trace_ids: Sequence[str]) -> None:
    """A placeholder roll-up row for each trace not stored yet (spans reference it), in the project of the
    request that first sends it; concurrent-safe."""
    project = home()
    rows = [{"trace_id": t, "status": "UNSET", "spans": 0, "input_tokens": 0, "output_tokens": 0,
             "attributes": "{}", "project": project} for t in trace_ids]
    conn.execute(_insert(conn, llm_traces).on_conflict_do_nothing(index_elements=["trace_id"]), rows)


def foreign_traces(conn: Connection, trace_ids: Sequence[str], project: str) -> set[str]:
    """The ids among `trace_ids` whose trace belongs to a project other than `project`."""
    out: set[str] = set()
    for chunk in in_chunks(trace_ids):
        out.update(conn.execute(select(llm_traces.c.trace_id).where(
            llm_traces.c.trace_id.in_(chunk), llm_traces.c.project != project)).scalars())
    return out


def replace_spans(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store spans; a (trace_id, span_id) already stored is replaced (an exporter's retry doubles nothing)."""
    stmt = _insert(conn, llm_spans)
    replace = {c.name: stmt.excluded[c.name] for c in llm_spans.columns if c.name not in ("trace_id", "span_id")}
    conn.execute(stmt.on_conflict_do_update(index_elements=["trace_id", "span_id"], set_=replace), list(rows))


def roll_up(conn: Connection, trace_ids: Sequence[str], identity: Mapping[str, Mapping[str, Any]]) -> None:
    """Recompute each trace's row from all its spans: times, counts, tokens, cost, status, and what the
    root span says (name, attributes); `identity` sets a trace's session, user and prompt where given."""
    s = llm_spans.c
    updates: dict[str, dict[str, Any]] = {}
    for chunk in in_chunks(trace_ids):
        agg = select(s.trace_id, func.min(s.start_ns), func.max(s.end_ns), func.count(),
                     func.sum(s.input_tokens), func.sum(s.output_tokens), func.sum(s.cost), func.count(s.cost),
                     func.sum(case((s.status == "ERROR", 1), else_=0))
                     ).where(s.trace_id.in_(chunk)).group_by(s.trace_id)
        for tid, start, end, n, tin, tout, cost, n_cost, errors in conn.execute(agg):
            updates[tid] = {"start_ns": start, "end_ns": end, "spans": n, "input_tokens": int(tin or 0),
                            "output_tokens": int(tout or 0), "cost": float(cost) if n_cost else None,
                            "status": "ERROR" if errors else "OK"}
        roots = select(s.trace_id, s.name, s.attributes, s.start_ns).where(
            s.trace_id.in_(chunk), s.parent_span_id.is_(None)).order_by(s.trace_id, s.start_ns)
        seen: set[str] = set()
        for tid, name, attributes, _ in conn.execute(roots):
            if tid in seen or tid not in updates:
                continue
            seen.add(tid)
            updates[tid]["_root"] = (name, attributes)
    rows = []
    for tid, u in updates.items():
        root = u.pop("_root", None)
        ident = identity.get(tid, {})
        rows.append({"b_trace_id": tid, **u, "name": root[0] if root else None,
                     "attributes": root[1] if root else "{}",
                     **{f"b_{k}": ident.get(k) for k in ("session", "user_id", "prompt")}})
    if rows:
        t = llm_traces.c
        values: dict[str, Any] = {k: bindparam(k) for k in rows[0] if not k.startswith("b_")}
        values.update(session=func.coalesce(bindparam("b_session"), t.session),
                      user_id=func.coalesce(bindparam("b_user_id"), t.user_id),
                      prompt=func.coalesce(bindparam("b_prompt"), t.prompt))
        conn.execute(update(llm_traces).where(t.trace_id == bindparam("b_trace_id")).values(values), rows)


def prices(conn: Connection) -> dict[str, tuple[float, float]]:
    return {m: (i, o) for m, i, o in conn.execute(select(llm_prices.c.model, llm_prices.c.input_per_million,
                                                          llm_prices.c.output_per_million))}


def price_rows(conn: Connection) -> Sequence[Any]:
    return conn.execute(select(llm_prices).order_by(llm_prices.c.model)).all()


def upsert_price(conn: Connection, **row: Any) -> Any:
    stmt = _insert(conn, llm_prices).values(**row)
    conn.execute(stmt.on_conflict_do_update(index_elements=["model"],
                                            set_={k: v for k, v in row.items() if k != "model"}))
    return conn.execute(select(llm_prices).where(llm_prices.c.model == row["model"])).one()


def get_trace(conn: Connection, trace_id: str) -> Any | None:
    """The trace's row; None for a missing one and for one outside the project scope alike."""
    return visible_row(conn.execute(select(llm_traces).where(llm_traces.c.trace_id == trace_id)).first())


def get_spans(conn: Connection, trace_id: str) -> Sequence[Any]:
    return conn.execute(select(llm_spans).where(llm_spans.c.trace_id == trace_id)
                        .order_by(llm_spans.c.start_ns, llm_spans.c.span_id)).all()


def get_scores(conn: Connection, trace_ids: Sequence[str]) -> Sequence[Any]:
    out: list[Any] = []
    for chunk in in_chunks(trace_ids):
        out += conn.execute(select(llm_scores).where(llm_scores.c.trace_id.in_(chunk))
                            .order_by(llm_scores.c.id)).all()
    return out


def insert_score(conn: Connection, **row: Any) -> Any:
    new_id = conn.execute(llm_scores.insert().values(**row).returning(llm_scores.c.id)).scalar_one()
    return conn.execute(select(llm_scores).where(llm_scores.c.id == new_id)).one()


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(conn: Connection, *, session: str | None, user: str | None, name: str | None,
           min_cost: float | None, max_cost: float | None, attributes: Sequence[tuple[str, Sequence[str]]],
           prompt: str | None, score: str | None, min_score: float | None, since_ns: int | None,
           until_ns: int | None, status: str | None, after: tuple[int, str] | None, limit: int) -> Sequence[Any]:
    """Newest first (by start time, then id), keyset-paged after `after`. An attribute condition is met when
    any span of the trace holds one of the given JSON spellings of `key: value`."""
    t = llm_traces.c
    where: list[ColumnElement[bool]] = [t.spans > 0, in_scope(t.project)]
    for column, value in ((t.session, session), (t.user_id, user), (t.name, name), (t.prompt, prompt),
                          (t.status, status)):
        if value is not None:
            where.append(column == value)
    if min_cost is not None:
        where.append(t.cost >= min_cost)
    if max_cost is not None:
        where.append(t.cost <= max_cost)
    if since_ns is not None:
        where.append(t.start_ns >= since_ns)
    if until_ns is not None:
        where.append(t.start_ns < until_ns)
    for _key, spellings in attributes:
        matches = or_(*(llm_spans.c.attributes.like(f"%{_like(sp)}%", escape="\\") for sp in spellings))
        where.append(t.trace_id.in_(select(llm_spans.c.trace_id).where(matches)))
    if score is not None:
        cond = [llm_scores.c.name == score]
        if min_score is not None:
            cond.append(llm_scores.c.value >= min_score)
        where.append(t.trace_id.in_(select(llm_scores.c.trace_id).where(*cond)))
    if after is not None:
        where.append(or_(t.start_ns < after[0], and_(t.start_ns == after[0], t.trace_id < after[1])))
    q = select(llm_traces).where(*where).order_by(t.start_ns.desc(), t.trace_id.desc()).limit(limit)
    return conn.execute(q).all()


def window(conn: Connection, since_ns: int, limit: int) -> Sequence[Any]:
    """Start, end and cost of the traces started since `since_ns` (for cost and latency over time)."""
    t = llm_traces.c
    return conn.execute(select(t.start_ns, t.end_ns, t.cost).where(t.spans > 0, t.start_ns >= since_ns,
                                                                    in_scope(t.project))
                        .order_by(t.start_ns).limit(limit)).all()


def sessions(conn: Connection, since_ns: int, limit: int) -> Sequence[Any]:
    """Per session with a trace started since `since_ns`, most recently active first: traces, users, first
    start, last end, errors, tokens and known cost (through the index on (session, start_ns))."""
    t = llm_traces.c
    last = func.max(func.coalesce(t.end_ns, t.start_ns))
    return conn.execute(
        select(t.session, func.count().label("traces"), func.count(t.user_id.distinct()).label("users"),
               func.min(t.start_ns).label("first_ns"), last.label("last_ns"),
               func.sum(case((t.status == "ERROR", 1), else_=0)).label("errors"),
               func.sum(t.input_tokens).label("input_tokens"), func.sum(t.output_tokens).label("output_tokens"),
               func.sum(t.cost).label("cost"))
        .where(t.session.is_not(None), t.spans > 0, t.start_ns >= since_ns, in_scope(t.project))
        .group_by(t.session).order_by(last.desc(), t.session).limit(limit)).all()
