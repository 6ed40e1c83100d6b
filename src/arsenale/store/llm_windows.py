"""SQL for LLM monitors: the traces of one window and their scores. Runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, or_, select
from sqlalchemy.sql.elements import ColumnElement

from arsenale.security.projects import in_scope
from arsenale.store.tables import llm_scores, llm_traces

_CHUNK = 400  # trace ids per IN list: far below SQLite's bound-parameter limit


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def window_traces(conn: Connection, *, since_ns: int, until_ns: int, name: str | None,
                  prompts: Sequence[str], prompt_prefixes: Sequence[str], with_attributes: bool) -> Sequence[Any]:
    """The stored traces (with at least one span) that started in [since_ns, until_ns), optionally of one
    trace name and whose prompt is one of `prompts` or starts with one of `prompt_prefixes`. Oldest first.
    The root span's attributes (the largest column) only when asked for."""
    t = llm_traces.c
    # background runs are unconfined (every project's traces); a run inside a project's scope reads its own
    where: list[ColumnElement[bool]] = [t.spans > 0, t.start_ns >= since_ns, t.start_ns < until_ns,
                                        in_scope(t.project)]
    if name is not None:
        where.append(t.name == name)
    matches: list[ColumnElement[bool]] = [t.prompt == p for p in prompts]
    matches += [t.prompt.like(f"{_like(p)}%", escape="\\") for p in prompt_prefixes]
    if matches:
        where.append(or_(*matches))
    columns = [t.trace_id, t.start_ns, t.end_ns, t.status, t.input_tokens, t.output_tokens, t.cost]
    if with_attributes:
        columns.append(t.attributes)
    return conn.execute(select(*columns).where(*where).order_by(t.start_ns, t.trace_id)).all()


def trace_scores(conn: Connection, trace_ids: Sequence[str]) -> Iterable[Any]:
    """(trace_id, name, value) of every score with a value on these traces, in the order they were given."""
    for i in range(0, len(trace_ids), _CHUNK):
        chunk = trace_ids[i:i + _CHUNK]
        yield from conn.execute(select(llm_scores.c.trace_id, llm_scores.c.name, llm_scores.c.value)
                                .where(llm_scores.c.trace_id.in_(chunk), llm_scores.c.value.is_not(None))
                                .order_by(llm_scores.c.id))
