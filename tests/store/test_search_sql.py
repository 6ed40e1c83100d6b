"""Run search compiled to SQL gives the same runs, in the same order, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import operator
import re
import secrets
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from arsenale.errors import InvalidFilter
from arsenale.store.db import dispose_all, get_engine
from arsenale.store.search_sql import compile_filter, order_by_clauses
from arsenale.store.tables import experiments, latest_metrics, params, runs, tags
from arsenale.tracking.search import ATTRIBUTES, And, Comparison, Expr, Or, parse_filter, parse_order_by
from tests.conftest import unavailable

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
NAN = math.nan
INF = math.inf


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A throw-away database, created with a linguistic (ICU) collation where the server has one, so that
    any reliance on the database's collation shows up as a failure."""
    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT",
                          poolclass=NullPool, connect_args={"connect_timeout": 3})
    name = f"ars_search_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            try:
                conn.execute(text(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                                  f"LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"))
            except DBAPIError:  # no ICU on this server: its default collation will do
                conn.execute(text(f"CREATE DATABASE {name}"))
    except OperationalError as exc:
        unavailable(f"PostgreSQL at {PG_SERVER} is unreachable: {exc.orig}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        dispose_all()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


# run id: (experiment, name, status, start_time, end_time, user, parent)
RUNS = {
    "r1": (1, "alpha", "FINISHED", 1000, 2000, "ann", None),
    "r2": (1, "Alpha-2", "RUNNING", 2000, None, "bob", None),
    "r3": (1, "beta", "FAILED", 3000, 3500, None, "r1"),
    "r4": (1, "gamma%", "FINISHED", 4000, 4100, "ann", None),
    "r5": (1, "delta_x", "FINISHED", 4000, 4200, "cid", None),
    "r6": (2, "s*[t]?", "FINISHED", 500, 600, "ann", None),
    "r7": (2, "sa[t]b", "FINISHED", 600, 700, "ann", None),
}
PARAMS = {
    "r1": {"lr": "0.1", "C": "1", "model": "resnet"},
    "r2": {"lr": "0.01", "model": "ResNet"},
    "r3": {"lr": "0.1", "model": "res\\net"},
    "r5": {"lr": "1e-3"},
}
TAGS = {
    "r1": {"env": "Prod", "my tag": "x"},
    "r2": {"env": "prod"},
    "r3": {"env": "staging"},
    "r6": {"env": "Édition"},
}
METRICS = {
    "r1": {"loss": 0.5, "acc": 0.9, "val/loss": 0.7},
    "r2": {"loss": 0.2, "acc": NAN},
    "r3": {"loss": INF},
    "r5": {"loss": -INF, "acc": 0.95},
}
ALL = set(RUNS)


def _seed(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(experiments), [
            {"experiment_id": i, "name": f"e{i}", "creation_time": 0, "last_update_time": 0} for i in (1, 2)])
        conn.execute(insert(runs), [
            {"run_id": rid, "experiment_id": e, "name": n, "status": s, "start_time": st, "end_time": et,
             "user_id": u, "parent_run_id": p}
            for rid, (e, n, s, st, et, u, p) in RUNS.items()])
        conn.execute(insert(params), [
            {"run_id": rid, "key": k, "value": v} for rid, kv in PARAMS.items() for k, v in kv.items()])
        conn.execute(insert(tags), [
            {"run_id": rid, "key": k, "value": v} for rid, kv in TAGS.items() for k, v in kv.items()])
        conn.execute(insert(latest_metrics), [
            {"run_id": rid, "key": k, "value": None if math.isnan(v) else v, "is_nan": math.isnan(v),
             "step": 0, "timestamp": 0}
            for rid, kv in METRICS.items() for k, v in kv.items()])


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if request.param == "sqlite":
        uri = "sqlite:///" + str(tmp_path_factory.mktemp("search") / "t.db")
    else:
        uri = request.getfixturevalue("postgres_uri")
    engine = get_engine(uri)
    _seed(engine)
    return engine


def _search(engine: Engine, filter_text: str | None, order_by: list[str] | None = None) -> list[str]:
    query = (select(runs.c.run_id).where(compile_filter(parse_filter(filter_text)))
             .order_by(*order_by_clauses(parse_order_by(order_by))))
    with engine.connect() as conn:
        return list(conn.scalars(query))


@pytest.mark.parametrize(("filter_text", "expected"), [
    (None, ALL),
    # metrics, with NaN never matching an ordered comparison, and inf ordered as a number
    ("metrics.loss < 0.6", {"r1", "r2", "r5"}),
    ("metrics.loss >= 0.5", {"r1", "r3"}),
    ("metrics.loss > 1e308", {"r3"}),
    ("metrics.loss < -1e308", {"r5"}),
    ("metrics.loss = 0.2", {"r2"}),
    ("metrics.acc > 0", {"r1", "r5"}),
    ("metrics.acc <= 1", {"r1", "r5"}),
    ("metrics.acc = 0.9", {"r1"}),
    ("metrics.acc != 0.9", {"r2", "r5"}),
    ("metrics.acc in (0.9, 0.95)", {"r1", "r5"}),
    ("metrics.acc not in (0.9)", {"r2", "r5"}),
    ("metrics.acc is null", {"r3", "r4", "r6", "r7"}),
    ("metrics.acc is not null", {"r1", "r2", "r5"}),
    ("metrics.`val/loss` < 1", {"r1"}),
    ("metrics.val/loss < 1", {"r1"}),
    ("metrics.missing != 1", set()),
    # params and tags compare as strings; != needs the key to be there
    ("params.lr = 0.1", {"r1", "r3"}),
    ("params.lr = 0.10", set()),
    ("params.lr != '0.1'", {"r2", "r5"}),
    ("params.lr < '0.05'", {"r2"}),
    ("params.lr in ('0.01', 1e-3)", {"r2", "r5"}),
    ("params.lr not in ('0.01')", {"r1", "r3", "r5"}),
    ("params.C is null", {"r2", "r3", "r4", "r5", "r6", "r7"}),
    ("params.C is not null", {"r1"}),
    ("params.model like 'res%'", {"r1", "r3"}),
    ("params.model like 'Res%'", {"r2"}),
    ("params.model ilike 'RES%'", {"r1", "r2", "r3"}),
    ("params.model like 'res\\\\\\\\net'", {"r3"}),
    ("params.model like 'res_net'", {"r3"}),
    ("tags.env = 'prod'", {"r2"}),
    ("tags.env like 'prod'", {"r2"}),
    ("tags.env ilike 'prod'", {"r1", "r2"}),
    ("tags.env ilike 'p%' or tags.env like '_tag%'", {"r1", "r2", "r3"}),
    ("tags.env < 'a'", {"r1"}),  # by code point: 'P' < 'a' < 'p'; a linguistic collation disagrees
    ("tags.env > 'z'", {"r6"}),
    ("tags.`my tag` = 'x'", {"r1"}),
    ('tags."my tag" is not null', {"r1"}),
    ("tags.env = \"x' or 1=1 --\"", set()),
    # attributes
    ("status = 'FINISHED'", {"r1", "r4", "r5", "r6", "r7"}),
    ("attributes.status in ('RUNNING', 'FAILED')", {"r2", "r3"}),
    ("status not in ('FINISHED')", {"r2", "r3"}),
    ("run_name = 'alpha'", {"r1"}),
    ("name like 'alpha%'", {"r1"}),
    ("name like 'Alpha%'", {"r2"}),
    ("name ilike 'alpha%'", {"r1", "r2"}),
    ("name like 'gamma\\\\%'", {"r4"}),
    ("name like 'gamma_'", {"r4"}),
    ("name like 'delta\\\\_x'", {"r5"}),
    ("name like 'delta_%'", {"r5"}),
    ("name like 's*%'", {"r6"}),  # GLOB's own wildcards are literals
    ("name like 's*[t]?'", {"r6"}),
    ("name like 's_[t]_'", {"r6", "r7"}),
    ("name like 's%[t]%'", {"r6", "r7"}),
    ("name ilike 'S*[T]?'", {"r6"}),
    ("start_time > 1999.5", {"r2", "r3", "r4", "r5"}),  # not rounded to the integer column
    ("start_time < 2000.5 and start_time >= 1000", {"r1", "r2"}),
    ("end_time is null", {"r2"}),
    ("end_time > 0", ALL - {"r2"}),
    ("user_id != 'ann'", {"r2", "r5"}),
    ("user_id is null", {"r3"}),
    ("parent_run_id = 'r1'", {"r3"}),
    ("experiment_id = 2", {"r6", "r7"}),
    ("experiment_id = '1' and status = 'FAILED'", {"r3"}),
    ("run_id in ('r1', 'r7', 'nope')", {"r1", "r7"}),
    ("lifecycle_stage = 'active'", ALL),
    # and / or / parentheses
    ("metrics.loss < 1 and (params.lr = '0.1' or tags.env = 'prod')", {"r1", "r2"}),
    ("metrics.loss < 1 and params.lr = '0.1' or tags.env = 'prod'", {"r1", "r2"}),
    ("tags.env = 'prod' or metrics.loss > 0 and params.lr = '0.01'", {"r2"}),
    ("(tags.env = 'prod' or metrics.loss > 0) and params.lr = '0.1'", {"r1", "r3"}),
    ("experiment_id = 2 or (metrics.acc is null and params.lr is not null)", {"r3", "r6", "r7"}),
])
def test_filter(engine: Engine, filter_text: str | None, expected: set[str]) -> None:
    assert set(_search(engine, filter_text)) == expected


@pytest.mark.parametrize(("order_by", "expected"), [
    ([], ["r4", "r5", "r3", "r2", "r1", "r7", "r6"]),  # newest first, run id breaks the tie
    (["metrics.loss"], ["r5", "r2", "r1", "r3", "r4", "r7", "r6"]),
    (["metrics.loss DESC"], ["r3", "r1", "r2", "r5", "r4", "r7", "r6"]),
    (["metrics.acc"], ["r1", "r5", "r2", "r4", "r3", "r7", "r6"]),  # NaN after numbers, absent last
    (["metrics.acc desc"], ["r5", "r1", "r2", "r4", "r3", "r7", "r6"]),
    (["tags.env"], ["r1", "r2", "r3", "r6", "r4", "r5", "r7"]),  # code point order
    (["tags.env desc"], ["r6", "r3", "r2", "r1", "r4", "r5", "r7"]),
    (["params.lr", "metrics.loss desc"], ["r2", "r3", "r1", "r5", "r4", "r7", "r6"]),
    (["end_time"], ["r6", "r7", "r1", "r3", "r4", "r5", "r2"]),
    (["end_time desc"], ["r5", "r4", "r3", "r1", "r7", "r6", "r2"]),
    (["user_id desc", "start_time"], ["r5", "r2", "r6", "r7", "r1", "r4", "r3"]),
    (["attributes.name"], ["r2", "r1", "r3", "r5", "r4", "r6", "r7"]),
])
def test_order_by(engine: Engine, order_by: list[str], expected: list[str]) -> None:
    assert _search(engine, None, order_by) == expected


def test_filter_and_order_together(engine: Engine) -> None:
    assert _search(engine, "metrics.loss is not null", ["metrics.loss desc"]) == ["r3", "r1", "r2", "r5"]


@pytest.mark.parametrize("comparison", [
    Comparison("param", "a", "like", "x\\"),
    Comparison("attribute", "colour", "=", "red"),
    Comparison("metric", "loss", "<", "0.5"),
    Comparison("metric", "loss", "like", "x%"),
    Comparison("tag", "a", "in", ()),
    Comparison("tag", "a", "~", "x"),
])
def test_hand_built_trees_are_checked(comparison: Comparison) -> None:
    with pytest.raises(InvalidFilter):
        compile_filter(comparison)


def test_cached_statements_take_new_patterns(engine: Engine) -> None:
    # The same statement shape is compiled once and reused; each pattern must still be its own.
    assert _search(engine, "name like 'alpha%'") == ["r1"]
    assert _search(engine, "name like 'beta%'") == ["r3"]
    assert _search(engine, "tags.env < 'q'") == ["r2", "r1"]
    assert _search(engine, "tags.env < 'Q'") == ["r1"]


# --- differential: random filters agree with a plain-Python reading of the same data ------------------------

_STRING_VALUES = sorted({v for kv in (*PARAMS.values(), *TAGS.values()) for v in kv.values()}
                        | {r[1] for r in RUNS.values()} | {"ann", "bob", "r1", "FINISHED", "", "a", "Z"})
_PATTERNS = st.lists(st.sampled_from(["%", "_", "\\%", "\\_", "\\\\", "*", "?", "[", "]", "a", "A", "p", "P",
                                      "res", "t", "É", "-"]), max_size=5).map("".join)
_NUMBERS = st.one_of(st.sampled_from([0.2, 0.5, 0.9, 0.95, 0.0, 1000.0, 2000.0, 4000.0, 1.0, 2.0]),
                     st.floats(allow_nan=False))


@st.composite
def _comparisons(draw: st.DrawFn) -> Comparison:
    kind = draw(st.sampled_from(["metric", "param", "tag", "attribute"]))
    if kind == "metric":
        key, numeric = draw(st.sampled_from(["loss", "acc", "val/loss", "none"])), True
    elif kind == "attribute":
        key = draw(st.sampled_from(sorted(ATTRIBUTES)))
        numeric = ATTRIBUTES[key] == "number"
    else:
        key, numeric = draw(st.sampled_from(["lr", "C", "model", "env", "my tag", "none"])), False
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"]
                              + ([] if numeric else ["like", "ilike"])))
    # Lone surrogates are refused by parse_filter (see test_search.py); comparisons built here skip the parser.
    text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=4)
    scalar = _NUMBERS if numeric else st.one_of(st.sampled_from(_STRING_VALUES), text)
    value: object = None
    if op in ("in", "not in"):
        value = tuple(draw(st.lists(scalar, min_size=1, max_size=3)))
    elif op in ("like", "ilike"):
        value = draw(_PATTERNS)
    elif op not in ("is null", "is not null"):
        value = draw(scalar)
    return Comparison(kind, key, op, value)  # type: ignore[arg-type]


_exprs: st.SearchStrategy[Expr] = st.recursive(
    _comparisons(),
    lambda children: st.lists(children, min_size=2, max_size=3).flatmap(
        lambda xs: st.sampled_from([And(tuple(xs)), Or(tuple(xs))])),
    max_leaves=4,
)


def _like(value: str, pattern: str, fold: bool) -> bool:
    """LIKE with escape character backslash; ilike folds ASCII letters only, as SQLite's lower() does."""
    if fold:
        value, pattern = value.translate(_ASCII_LOWER), pattern.translate(_ASCII_LOWER)
    regex, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            regex.append(re.escape(pattern[i]))
        else:
            regex.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(regex), value, re.DOTALL) is not None


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ATTRIBUTE_INDEX = {"experiment_id": 0, "run_name": 1, "status": 2, "start_time": 3, "end_time": 4, "user_id": 5,
                    "parent_run_id": 6}


def _field(run_id: str, c: Comparison) -> tuple[bool, object]:
    """(whether the run has the field, its value)."""
    if c.kind == "attribute":
        if c.key == "run_id":
            return True, run_id
        if c.key == "lifecycle_stage":
            return True, "active"
        value = RUNS[run_id][_ATTRIBUTE_INDEX[c.key]]
        return value is not None, value
    sources: dict[str, dict[str, dict[str, Any]]] = {"metric": METRICS, "param": PARAMS, "tag": TAGS}
    source = sources[c.kind]
    values = source.get(run_id, {})
    return c.key in values, values.get(c.key)


def _matches(run_id: str, expr: Expr) -> bool:
    if isinstance(expr, And):
        return all(_matches(run_id, item) for item in expr.items)
    if isinstance(expr, Or):
        return any(_matches(run_id, item) for item in expr.items)
    present, value = _field(run_id, expr)
    if expr.op in ("is null", "is not null"):
        return present == (expr.op == "is not null")
    if not present:
        return False
    if isinstance(value, (int, float)):
        value = float(value)
        if math.isnan(value):  # NaN is unequal to everything and never ordered
            return expr.op in ("!=", "not in")
    if expr.op == "like" or expr.op == "ilike":
        return _like(str(value), str(expr.value), expr.op == "ilike")
    if expr.op == "in" or expr.op == "not in":
        assert isinstance(expr.value, tuple)
        return (value in expr.value) == (expr.op == "in")
    compare: Callable[[Any, Any], Any] = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
               ">=": operator.ge}[expr.op]
    return bool(compare(value, expr.value))


@settings(max_examples=300, deadline=None)
@given(expr=_exprs)
def test_random_filters_agree_with_reference(engine: Engine, expr: Expr) -> None:
    query = select(runs.c.run_id).where(compile_filter(expr))
    with engine.connect() as conn:
        found = set(conn.scalars(query))
    assert found == {run_id for run_id in RUNS if _matches(run_id, expr)}
