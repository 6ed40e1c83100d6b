"""Run-search ASTs compiled into SQLAlchemy expressions over `runs`.

Metrics, params and tags live in their own tables, so each comparison becomes a
correlated EXISTS (filters) or scalar subquery (ordering) on the run; no joins
multiply rows and no SQL text is ever built from user input.

The results must not depend on the backend, which takes three adjustments:
- `like` is case-sensitive: PostgreSQL's LIKE already is; SQLite's LIKE folds
  ASCII case, so there the pattern is translated to GLOB.
- string ordering (`<`, ORDER BY) is by code point: PostgreSQL would otherwise
  use the database's linguistic collation, SQLite compares bytes.
- `ilike` folds case with SQLite's lower(), which only knows ASCII letters;
  non-ASCII letters match case-insensitively only on PostgreSQL.
"""

from __future__ import annotations

import operator
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Double,
    String,
    and_,
    case,
    collate,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal, _TraverseInternalsType

from arsenale.errors import InvalidFilter
from arsenale.store.tables import latest_metrics, params, runs, tags
from arsenale.tracking.search import ATTRIBUTES, And, Comparison, Expr, Or, OrderKey

__all__ = ["compile_filter", "order_by_clauses"]

_ATTRIBUTE_COLUMNS = {key: runs.c["name" if key == "run_name" else key] for key in ATTRIBUTES}
_ORDERING_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class _CodePointOrder(ColumnElement[Any]):
    """A string expression that compares by code point on every backend."""

    inherit_cache = True
    _traverse_internals: _TraverseInternalsType = [  # noqa: RUF012 (SQLAlchemy declares it per instance)
        ("element", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, element: ColumnElement[Any]) -> None:
        self.element = element
        self.type = element.type


@compiles(_CodePointOrder)
def _code_point_default(element: _CodePointOrder, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.element, **kw)  # SQLite's default BINARY collation already is


@compiles(_CodePointOrder, "postgresql")
def _code_point_postgresql(element: _CodePointOrder, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(collate(element.element, "C"), **kw)


class _CaseSensitiveLike(ColumnElement[bool]):
    """`element LIKE pattern ESCAPE '\\'`, case-sensitive on every backend."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # already a predicate: SQLite must not get "= 1" appended
    _traverse_internals: _TraverseInternalsType = [  # noqa: RUF012 (SQLAlchemy declares it per instance)
        ("element", InternalTraversal.dp_clauseelement),
        ("pattern", InternalTraversal.dp_clauseelement),
        ("glob", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, element: ColumnElement[Any], pattern: str) -> None:
        # Both spellings are bound parameters, so cached statements stay correct for new patterns.
        self.element = element
        self.pattern = literal(pattern, String())
        self.glob = literal(_like_to_glob(pattern), String())


@compiles(_CaseSensitiveLike)
def _like_default(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.element.like(element.pattern, escape="\\"), **kw)


@compiles(_CaseSensitiveLike, "sqlite")
def _like_sqlite(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.element.op("GLOB", is_comparison=True)(element.glob), **kw)


def _like_to_glob(pattern: str) -> str:
    """Translate a LIKE pattern (escape character backslash, never trailing) into the equivalent GLOB."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 1
            ch = pattern[i]
        elif ch in "%_":
            out.append("*" if ch == "%" else "?")
            i += 1
            continue
        out.append(f"[{ch}]" if ch in "*?[" else ch)
        i += 1
    return "".join(out)


def compile_filter(expr: Expr | None) -> ColumnElement[bool]:
    """A WHERE clause over `runs` for a parsed filter; true() when there is none."""
    if expr is None:
        return true()
    if isinstance(expr, And):
        return and_(*(compile_filter(item) for item in expr.items))
    if isinstance(expr, Or):
        return or_(*(compile_filter(item) for item in expr.items))
    if isinstance(expr, Comparison):
        if expr.kind == "metric":
            return _metric(expr)
        if expr.kind == "attribute":
            return _attribute(expr)
        if expr.kind in ("param", "tag"):
            return _key_value(params if expr.kind == "param" else tags, expr)
    raise InvalidFilter(f"cannot search on {expr!r}", field="filter")


def _metric(c: Comparison) -> ColumnElement[bool]:
    """A metric's latest value; NaN (stored as is_nan) is unequal to everything and unordered."""
    lm = latest_metrics
    if c.op in ("is null", "is not null"):
        return _presence(lm, c.key, c.op)
    if c.op == "!=":
        test = or_(lm.c.is_nan, lm.c.value != _number(c.value))
    elif c.op == "not in":
        test = or_(lm.c.is_nan, lm.c.value.not_in([_number(v) for v in _values(c)]))
    else:
        test = and_(lm.c.is_nan == false(), _compare(lm.c.value, c, numeric=True))
    return _runs_with(lm, c.key, test)


def _key_value(table: Any, c: Comparison) -> ColumnElement[bool]:
    """A param or tag; like MLflow, `!=` and `not in` match only runs that have the key."""
    if c.op in ("is null", "is not null"):
        return _presence(table, c.key, c.op)
    return _runs_with(table, c.key, _compare(table.c.value, c, numeric=False))


def _runs_with(table: Any, key: str, test: ColumnElement[bool] | None = None) -> ColumnElement[bool]:
    """run_id IN (runs whose `key` passes `test`): an uncorrelated subquery the database evaluates once,
    through the (key, value) index, instead of one correlated lookup per candidate run."""
    q = select(table.c.run_id).where(table.c.key == key)
    return runs.c.run_id.in_(q if test is None else q.where(test))


def _attribute(c: Comparison) -> ColumnElement[bool]:
    column = _ATTRIBUTE_COLUMNS.get(c.key)
    if column is None:
        raise InvalidFilter(f"unknown run attribute {c.key!r}", field="filter")
    if c.op == "is null":
        return column.is_(None)
    if c.op == "is not null":
        return column.is_not(None)
    return _compare(column, c, numeric=ATTRIBUTES[c.key] == "number")


def _presence(table: Any, key: str, op: str) -> ColumnElement[bool]:
    found = _runs_with(table, key)
    return not_(found) if op == "is null" else found


def _compare(column: ColumnElement[Any], c: Comparison, *, numeric: bool) -> ColumnElement[bool]:
    # Numbers are bound as DOUBLE so that 1999.5 is not rounded to fit an integer column.
    def bind(value: object) -> ColumnElement[Any]:
        return literal(_number(value), Double()) if numeric else literal(_string(value), String())

    if c.op in ("like", "ilike"):
        if numeric:
            raise InvalidFilter(f"{c.op} needs a string field, not {c.kind} {c.key!r}", field="filter")
        pattern = _string(c.value)
        if (len(pattern) - len(pattern.rstrip("\\"))) % 2:
            raise InvalidFilter(f"{c.op} pattern {pattern!r} ends with an unescaped backslash", field="filter")
        return _CaseSensitiveLike(column, pattern) if c.op == "like" else column.ilike(pattern, escape="\\")
    if c.op in ("in", "not in"):
        values = [bind(v) for v in _values(c)]
        return column.in_(values) if c.op == "in" else column.not_in(values)
    if c.op in _ORDERING_OPS and not numeric:
        column = _CodePointOrder(column)
    if c.op in ("=", "!="):
        return column == bind(c.value) if c.op == "=" else column != bind(c.value)
    if c.op in _ORDERING_OPS:
        return _ORDERING_OPS[c.op](column, bind(c.value))  # type: ignore[no-any-return]
    raise InvalidFilter(f"unknown operator {c.op!r}", field="filter")


def _values(c: Comparison) -> tuple[object, ...]:
    if not isinstance(c.value, tuple) or not c.value:
        raise InvalidFilter(f"{c.op} needs a non-empty list of values", field="filter")
    return c.value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidFilter(f"expected a number, got {value!r}", field="filter")
    return float(value)


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidFilter(f"expected a string, got {value!r}", field="filter")
    if "\x00" in value:  # no stored key or value can hold NUL, and PostgreSQL refuses it outright
        raise InvalidFilter("filter values must not contain NUL characters", field="filter")
    return value


def order_by_clauses(keys: list[OrderKey]) -> list[Any]:
    """ORDER BY expressions: missing values (and then NaN) last in both directions, then newest run first."""
    clauses: list[Any] = []
    for key in keys:
        rank, value = _order_terms(key)
        if rank is not None:
            clauses.append(rank)
        clauses.append(value.asc() if key.ascending else value.desc())
    clauses += [runs.c.start_time.desc(), runs.c.run_id]
    return clauses


def _order_terms(key: OrderKey) -> tuple[ColumnElement[Any] | None, ColumnElement[Any]]:
    """(a rank that sorts absent values after present ones, the value itself)."""
    if key.kind == "metric":
        lm = latest_metrics
        where = (lm.c.run_id == runs.c.run_id, lm.c.key == key.key)
        nan_rank = select(case((lm.c.is_nan, 1), else_=0)).where(*where).correlate(runs).scalar_subquery()
        value = select(lm.c.value).where(*where).correlate(runs).scalar_subquery()
        return func.coalesce(nan_rank, 2), value
    if key.kind in ("param", "tag"):
        table = params if key.kind == "param" else tags
        sub = select(table.c.value).where(table.c.run_id == runs.c.run_id, table.c.key == key.key)
        value = sub.correlate(runs).scalar_subquery()
        return case((value.is_(None), 1), else_=0), _CodePointOrder(value)
    column = _ATTRIBUTE_COLUMNS.get(key.key)
    if key.kind != "attribute" or column is None:
        raise InvalidFilter(f"cannot order by {key.kind} {key.key!r}", field="order_by")
    ordered = column if ATTRIBUTES[key.key] == "number" else _CodePointOrder(column)
    return (case((column.is_(None), 1), else_=0) if column.nullable else None), ordered
