"""The run-search language, without a database: what parses to what, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arsenale.errors import InvalidFilter
from arsenale.tracking.search import (
    ATTRIBUTES,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    And,
    Comparison,
    Expr,
    Or,
    OrderKey,
    format_filter,
    parse_filter,
    parse_order_by,
)


def M(key: str, op: str, value: object) -> Comparison:
    return Comparison("metric", key, op, value)


def P(key: str, op: str, value: object) -> Comparison:
    return Comparison("param", key, op, value)


def T(key: str, op: str, value: object) -> Comparison:
    return Comparison("tag", key, op, value)


def A(key: str, op: str, value: object) -> Comparison:
    return Comparison("attribute", key, op, value)


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_nothing_to_filter_on(text: str | None) -> None:
    assert parse_filter(text) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("metrics.loss < 0.5", M("loss", "<", 0.5)),
    ("metric.loss<=-1e-3", M("loss", "<=", -0.001)),
    ("metrics.loss == 2", M("loss", "=", 2.0)),
    ("metrics.loss >= +.5E2", M("loss", ">=", 50.0)),
    ("metrics.val/loss != 1", M("val/loss", "!=", 1.0)),
    ("metrics.`my loss` > 0", M("my loss", ">", 0.0)),
    ('metrics."a b" > 0', M("a b", ">", 0.0)),
    ("metrics.`a\\`b` > 0", M("a`b", ">", 0.0)),
    ("params.C = 0.1", P("C", "=", "0.1")),
    ("params.C = 1e3", P("C", "=", "1e3")),
    ("params.lr_0.1 = 'x'", P("lr_0.1", "=", "x")),
    ("param.model = \"res'net\"", P("model", "=", "res'net")),
    ("params.q = 'it\\'s'", P("q", "=", "it's")),
    ("params.q = 'back\\\\slash'", P("q", "=", "back\\slash")),
    ("params.q like 'a\\%b'", P("q", "like", "a\\%b")),
    ("tags.env LIKE 'prod%'", T("env", "like", "prod%")),
    ("tag.env ilike '%PROD%'", T("env", "ilike", "%PROD%")),
    ("tags.env in ('a', \"b\", 3)", T("env", "in", ("a", "b", "3"))),
    ("tags.env NOT IN ('a')", T("env", "not in", ("a",))),
    ("metrics.loss in (1, 2.5)", M("loss", "in", (1.0, 2.5))),
    ("tags.env is null", T("env", "is null", None)),
    ("metrics.acc IS NOT NULL", M("acc", "is not null", None)),
    ("status = 'FINISHED'", A("status", "=", "FINISHED")),
    ("attributes.status != 'RUNNING'", A("status", "!=", "RUNNING")),
    ("attribute.name like 'x%'", A("run_name", "like", "x%")),
    ("run.run_name = 'x'", A("run_name", "=", "x")),
    ("NAME = 'x'", A("run_name", "=", "x")),
    ("start_time >= 1700000000000", A("start_time", ">=", 1.7e12)),
    ("end_time is null", A("end_time", "is null", None)),
    ("experiment_id = 2", A("experiment_id", "=", 2.0)),
    ("experiment_id in ('2', 3)", A("experiment_id", "in", (2.0, 3.0))),
    ("user_id = 7", A("user_id", "=", "7")),
])
def test_comparisons(text: str, expected: Comparison) -> None:
    assert parse_filter(text) == expected


def test_and_binds_tighter_than_or() -> None:
    a, b, c = M("a", "=", 1.0), M("b", "=", 2.0), M("c", "=", 3.0)
    assert parse_filter("metrics.a = 1 or metrics.b = 2 AND metrics.c = 3") == Or((a, And((b, c))))
    assert parse_filter("(metrics.a = 1 or metrics.b = 2) and metrics.c = 3") == And((Or((a, b)), c))
    assert parse_filter("metrics.a = 1 and metrics.b = 2 and metrics.c = 3") == And((a, b, c))
    assert parse_filter("((metrics.a = 1))") == a


@pytest.mark.parametrize(("text", "fragment", "position"), [
    ("metrics.loss", "expected an operator", 13),
    ("metrics.loss < 'a'", "is numeric", 16),
    ("metrics.loss like 'a%'", "needs a string field", 14),
    ("start_time = '5'", "is numeric", 14),
    ("params.a like 1", "quoted pattern", 15),
    ("params.a like 'x\\'", "unterminated", 15),
    ("params.a like 'x\\\\\\'", "unterminated", 15),
    ("params.a like 'x\\\\'", "unescaped backslash", 15),
    ("params.a = null", "is null", 12),
    ("params.a in ()", "expected a value", 14),
    ("params.a in ('x'", "',' or ')'", 17),
    ("params.a in 'x'", "'('", 13),
    ("params.a not like 'x'", "expected 'in'", 14),
    ("params.a is nothing", "expected 'null'", 13),
    ("params.a = 'x' params.b = 'y'", "expected 'and', 'or'", 16),
    ("params.a = 'x' and", "found end of input", 19),
    ("(params.a = 'x'", "expected ')'", 16),
    ("params.a = 'x')", "found ')'", 15),
    ("foo.a = 1", "unknown field type 'foo'", 1),
    ("params. = 1", "missing key", 1),
    ("metrics.`` = 1", "missing key", 1),
    ("colour = 'red'", "unknown run attribute 'colour'", 1),
    ("params.a = `x`", "backticks", 12),
    ("params.a ! 1", "unknown operator", 10),
    ("params.a = 1.2.3", "malformed number", 12),
    ("params.a = 'x' & params.b = 'y'", "unexpected character '&'", 16),
    ("= 1", "expected a field", 1),
])
def test_errors_say_what_and_where(text: str, fragment: str, position: int) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_filter(text)
    assert info.value.field == "filter"
    assert fragment in info.value.message
    assert f"position {position}:" in info.value.message


def test_limits() -> None:
    inner = "metrics.a = 1"
    parse_filter("(" * MAX_DEPTH + inner + ")" * MAX_DEPTH)
    with pytest.raises(InvalidFilter, match="nested deeper"):
        parse_filter("(" * (MAX_DEPTH + 1) + inner + ")" * (MAX_DEPTH + 1))
    with pytest.raises(InvalidFilter, match="nested deeper"):
        parse_filter("(" * 50_00)
    long = " or ".join([inner] * (MAX_FILTER_LENGTH // (len(inner) + 4)))
    assert isinstance(parse_filter(long), Or)
    with pytest.raises(InvalidFilter, match="limit is 10000"):
        parse_filter(long + " " * (MAX_FILTER_LENGTH - len(long) + 1))


def test_non_string_filter_is_refused() -> None:
    with pytest.raises(InvalidFilter, match="must be a string"):
        parse_filter(42)  # type: ignore[arg-type]


def test_lone_surrogates_are_refused_before_any_database_sees_them() -> None:
    with pytest.raises(InvalidFilter, match="surrogate"):
        parse_filter("params.model = '\ud800'")
    with pytest.raises(InvalidFilter, match="surrogate"):
        parse_order_by(["metrics.\udfff"])


@pytest.mark.parametrize(("items", "expected"), [
    (None, []),
    ([], []),
    (["metrics.loss"], [OrderKey("metric", "loss", True)]),
    (["metrics.loss DESC", "params.C asc"], [OrderKey("metric", "loss", False), OrderKey("param", "C", True)]),
    (["start_time desc"], [OrderKey("attribute", "start_time", False)]),
    (["attributes.name", "tags.`my tag` Desc"], [OrderKey("attribute", "run_name", True),
                                                 OrderKey("tag", "my tag", False)]),
])
def test_order_by(items: list[str] | None, expected: list[OrderKey]) -> None:
    assert parse_order_by(items) == expected


@pytest.mark.parametrize("items", [
    "metrics.loss", [""], ["metrics.loss sideways"], ["metrics.loss desc desc"], ["colour"], ["metrics."], [3],
    ["metrics.loss = 1"], ["x"] * 21,
])
def test_bad_order_by(items: object) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_order_by(items)  # type: ignore[arg-type]
    assert info.value.field == "order_by"


# --- properties ---------------------------------------------------------------------------------------------

_chars = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))  # lone surrogates are refused
_keys = st.text(_chars, min_size=1, max_size=12)
_strings = st.text(_chars, max_size=12)
_patterns = _strings.filter(lambda s: (len(s) - len(s.rstrip("\\"))) % 2 == 0)
_numbers = st.floats(allow_nan=False, allow_infinity=False)
_ORDER_OPS = ["=", "!=", "<", "<=", ">", ">="]
_NULL_OPS = ["is null", "is not null"]


@st.composite
def _comparisons(draw: st.DrawFn) -> Comparison:
    kind = draw(st.sampled_from(["metric", "param", "tag", "attribute"]))
    if kind == "attribute":
        key = draw(st.sampled_from(sorted(ATTRIBUTES)))
        numeric = ATTRIBUTES[key] == "number"
    else:
        key, numeric = draw(_keys), kind == "metric"
    ops = _ORDER_OPS + ["in", "not in"] + _NULL_OPS + ([] if numeric else ["like", "ilike"])
    op = draw(st.sampled_from(ops))
    scalar = _numbers if numeric else _strings
    value: object
    if op in _NULL_OPS:
        value = None
    elif op in ("in", "not in"):
        value = tuple(draw(st.lists(scalar, min_size=1, max_size=3)))
    elif op in ("like", "ilike"):
        value = draw(_patterns)
    else:
        value = draw(scalar)
    return Comparison(kind, key, op, value)  # type: ignore[arg-type]


_exprs: st.SearchStrategy[Expr] = st.recursive(
    _comparisons(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=8,
)


@settings(max_examples=400)
@given(_exprs)
def test_printed_filters_parse_back_to_the_same_tree(expr: Expr) -> None:
    assert parse_filter(format_filter(expr)) == expr


_FRAGMENTS = [
    "metrics.", "params.", "tags.", "attributes.", "status", "loss", "`", '"', "'", "\\", "(", ")", ",", " ",
    "and", "or", "not", "in", "is", "null", "like", "ilike", "=", "==", "!=", "<", "<=", ">", ">=", "!", "1",
    "-2.5e3", ".", "1e", "é", "\x00", "\n",
]


@settings(max_examples=600)
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(_FRAGMENTS), max_size=25).map("".join)))
def test_garbage_never_raises_anything_but_invalid_filter(text: str) -> None:
    for parse in (lambda: parse_filter(text), lambda: parse_order_by([text])):
        try:
            parse()
        except InvalidFilter as exc:
            assert exc.message


def test_nul_characters_are_refused() -> None:
    with pytest.raises(InvalidFilter, match="NUL"):
        parse_filter("params.lr = '\x00'")
