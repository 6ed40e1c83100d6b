"""The run-search language: filter and order-by text parsed into a small AST.

Kept free of SQL so the same AST can be compiled by the store, checked by the
HTTP client before a round trip, and printed back by `format_filter`. The
grammar follows MLflow's search syntax, with `or` and parentheses added:

    expr       := and_expr ("or" and_expr)*
    and_expr   := atom ("and" atom)*
    atom       := "(" expr ")" | comparison
    comparison := ENTITY OP VALUE | ENTITY ["not"] "in" "(" VALUE ("," VALUE)* ")"
                | ENTITY "is" ["not"] "null"

Keywords are case-insensitive; keys are not. Error positions are 1-based
character offsets into the text the user wrote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from arsenale.errors import InvalidFilter

__all__ = [
    "ATTRIBUTES",
    "MAX_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_ORDER_BY",
    "And",
    "Comparison",
    "Expr",
    "Kind",
    "Or",
    "OrderKey",
    "format_filter",
    "parse_filter",
    "parse_order_by",
]

Kind = Literal["metric", "param", "tag", "attribute"]

MAX_FILTER_LENGTH = 10_000
MAX_DEPTH = 100
MAX_ORDER_BY = 20

# Run attributes and how they compare. experiment_id is an integer column, so it
# compares numerically even though the API spells ids as strings.
ATTRIBUTES: dict[str, Literal["string", "number"]] = {
    "run_id": "string",
    "run_name": "string",
    "status": "string",
    "start_time": "number",
    "end_time": "number",
    "user_id": "string",
    "parent_run_id": "string",
    "experiment_id": "number",
    "lifecycle_stage": "string",
}
_ATTRIBUTE_ALIASES = {"name": "run_name"}

_PREFIXES: dict[str, Kind] = {
    "metrics": "metric", "metric": "metric",
    "params": "param", "param": "param",
    "tags": "tag", "tag": "tag",
    "attributes": "attribute", "attribute": "attribute", "run": "attribute",
}
_CANONICAL_PREFIX: dict[Kind, str] = {
    "metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes",
}

_OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Comparison:
    """One test on one field. `value` is a str, a float, a tuple of those (in / not in) or None (is [not] null)."""

    kind: Kind
    key: str
    op: str
    value: object


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


Expr = Comparison | And | Or


@dataclass(frozen=True)
class OrderKey:
    kind: Kind
    key: str
    ascending: bool


# --- tokens -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: Literal["word", "entity", "string", "number", "op", "(", ")", ",", "end"]
    text: str
    pos: int  # 0-based; shown 1-based
    value: object = None  # unescaped string, or (prefix, key) for a quoted-key entity


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_-./:"


def _read_quoted(text: str, start: int, field: str) -> tuple[str, int]:
    """Read a quoted run starting at `start`; a backslash escapes the quote or itself, and is kept otherwise
    so that LIKE patterns can still escape % and _."""
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise _error(field, start, f"unterminated {quote} quote")


def _tokenize(text: str, field: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(_Token(ch, ch, i))  # type: ignore[arg-type]
            i += 1
        elif ch in "=!<>":
            op = text[i:i + 2] if text[i:i + 2] in _OPERATORS else ch
            if op not in _OPERATORS:
                raise _error(field, i, f"unknown operator {op!r}")
            tokens.append(_Token("op", op, i))
            i += len(op)
        elif ch in "'\"":
            value, end = _read_quoted(text, i, field)
            tokens.append(_Token("string", text[i:end], i, value))
            i = end
        elif ch == "`":
            raise _error(field, i, "backticks quote keys after a prefix, e.g. metrics.`my loss`")
        elif ch.isalpha() or ch == "_":
            j = i
            while j < len(text) and _is_word_char(text[j]):
                j += 1
            word = text[i:j]
            if word.endswith(".") and word.count(".") == 1 and j < len(text) and text[j] in "`\"":
                key, end = _read_quoted(text, j, field)
                tokens.append(_Token("entity", text[i:end], i, (word[:-1], key)))
                j = end
            else:
                tokens.append(_Token("word", word, i))
            i = j
        else:
            match = _NUMBER.match(text, i)
            if match is None:
                raise _error(field, i, f"unexpected character {ch!r}")
            end = match.end()
            if end < len(text) and _is_word_char(text[end]):
                raise _error(field, i, f"malformed number {text[i:end + 1]!r}")
            tokens.append(_Token("number", match.group(), i, float(match.group())))
            i = end
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _error(field: str, pos: int, message: str) -> InvalidFilter:
    return InvalidFilter(f"invalid {field} at position {pos + 1}: {message}", field=field)


def _describe(token: _Token) -> str:
    return "end of input" if token.kind == "end" else repr(token.text)


# --- parser -----------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, field: str) -> None:
        self.field = field
        self.tokens = _tokenize(text, field)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token.kind == "word" and token.text.lower() in words:
            self.i += 1
            return token.text.lower()
        return None

    def fail(self, token: _Token, message: str) -> InvalidFilter:
        return _error(self.field, token.pos, message)

    def expect(self, kind: str, what: str) -> _Token:
        token = self.take()
        if token.kind != kind:
            raise self.fail(token, f"expected {what}, found {_describe(token)}")
        return token

    def expr(self) -> Expr:
        items = [self.and_expr()]
        while self.keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.atom()]
        while self.keyword("and"):
            items.append(self.atom())
        return items[0] if len(items) == 1 else And(tuple(items))

    def atom(self) -> Expr:
        token = self.peek()
        if token.kind != "(":
            return self.comparison()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(token, f"parentheses nested deeper than {MAX_DEPTH}")
        self.take()
        inner = self.expr()
        self.expect(")", "')'")
        self.depth -= 1
        return inner

    def entity(self) -> tuple[Kind, str]:
        token = self.take()
        if token.kind == "entity":
            prefix, key = token.value  # type: ignore[misc]
        elif token.kind == "word" and "." in token.text:
            prefix, _, key = token.text.partition(".")
        elif token.kind == "word":
            prefix, key = "attributes", token.text
        else:
            raise self.fail(token, f"expected a field such as metrics.loss or status, found {_describe(token)}")
        kind = _PREFIXES.get(prefix.lower())
        if kind is None:
            raise self.fail(token, f"unknown field type {prefix!r}: use metrics., params., tags. or attributes.")
        if not key:
            raise self.fail(token, f"missing key after {prefix!r}.")
        if kind == "attribute":
            name = _ATTRIBUTE_ALIASES.get(key.lower(), key.lower())
            if name not in ATTRIBUTES:
                raise self.fail(token, f"unknown run attribute {key!r}: expected one of {', '.join(ATTRIBUTES)}")
            key = name
        return kind, key

    def comparison(self) -> Comparison:
        start = self.peek()
        kind, key = self.entity()
        numeric = kind == "metric" or (kind == "attribute" and ATTRIBUTES[key] == "number")
        token = self.peek()
        if token.kind == "op":
            self.take()
            return Comparison(kind, key, _OPERATORS[token.text], self.value(numeric, key))
        word = self.keyword("like", "ilike", "in", "not", "is")
        if word in ("like", "ilike"):
            if numeric:
                raise self.fail(token, f"{word} needs a string field, and {start.text!r} is numeric")
            pattern = self.peek()
            if pattern.kind != "string":
                raise self.fail(pattern, f"{word} needs a quoted pattern, found {_describe(pattern)}")
            self.take()
            if _ends_with_escape(str(pattern.value)):
                raise self.fail(pattern, "a pattern cannot end with an unescaped backslash")
            return Comparison(kind, key, word, pattern.value)
        if word == "not":
            if not self.keyword("in"):
                raise self.fail(self.peek(), f"expected 'in' after 'not', found {_describe(self.peek())}")
            return Comparison(kind, key, "not in", self.value_list(numeric, key))
        if word == "in":
            return Comparison(kind, key, "in", self.value_list(numeric, key))
        if word == "is":
            negated = self.keyword("not") is not None
            if not self.keyword("null"):
                raise self.fail(self.peek(), f"expected 'null', found {_describe(self.peek())}")
            return Comparison(kind, key, "is not null" if negated else "is null", None)
        raise self.fail(token, f"expected an operator (=, !=, <, <=, >, >=, like, ilike, in, not in, is null) "
                               f"after {start.text!r}, found {_describe(token)}")

    def value_list(self, numeric: bool, key: str) -> tuple[object, ...]:
        self.expect("(", "'(' to open the list")
        values = [self.value(numeric, key)]
        while self.peek().kind == ",":
            self.take()
            values.append(self.value(numeric, key))
        self.expect(")", "',' or ')' in the list")
        return tuple(values)

    def value(self, numeric: bool, key: str) -> object:
        token = self.take()
        if token.kind == "number":
            # Strings keep the number as written: params.C = 0.1 means the string '0.1'.
            return token.value if numeric else token.text
        if token.kind == "string":
            if not numeric:
                return token.value
            if key == "experiment_id" and re.fullmatch(r"\d+", str(token.value)):
                return float(str(token.value))
            raise self.fail(token, f"{key!r} is numeric: compare it with a number, not the string {token.text}")
        if token.kind == "word" and token.text.lower() == "null":
            raise self.fail(token, "compare with null using 'is null' or 'is not null'")
        raise self.fail(token, f"expected a value (a number or a quoted string), found {_describe(token)}")


def _ends_with_escape(pattern: str) -> bool:
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return trailing % 2 == 1


def _check_length(text: str, field: str) -> None:
    if "\x00" in text:
        raise InvalidFilter(f"{field} must not contain NUL characters", field=field)
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(f"{field} is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}",
                            field=field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no database can store or compare it
        raise InvalidFilter(f"{field} is not valid Unicode text (it holds a lone surrogate)", field=field) from None


def parse_filter(text: str | None) -> Expr | None:
    """Parse a run filter; None when there is nothing to filter on."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidFilter(f"filter must be a string, not {type(text).__name__}", field="filter")
    _check_length(text, "filter")
    if not text.strip():
        return None
    parser = _Parser(text, "filter")
    expr = parser.expr()
    trailing = parser.peek()
    if trailing.kind != "end":
        raise parser.fail(trailing, f"expected 'and', 'or' or end of filter, found {_describe(trailing)}")
    return expr


def parse_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Parse order-by items such as 'metrics.loss DESC'; ascending unless DESC is given."""
    if items is None:
        return []
    if isinstance(items, str) or not all(isinstance(item, str) for item in items):
        raise InvalidFilter("order_by must be a list of strings such as ['metrics.loss DESC']", field="order_by")
    if len(items) > MAX_ORDER_BY:
        raise InvalidFilter(f"order_by has {len(items)} keys; the limit is {MAX_ORDER_BY}", field="order_by")
    keys = []
    for item in items:
        _check_length(item, "order_by")
        parser = _Parser(item, "order_by")
        kind, key = parser.entity()
        direction = parser.keyword("asc", "desc")
        trailing = parser.peek()
        if trailing.kind != "end":
            raise parser.fail(trailing, f"expected ASC, DESC or end of {item!r}, found {_describe(trailing)}")
        keys.append(OrderKey(kind, key, direction != "desc"))
    return keys


# --- printing ---------------------------------------------------------------------------------------------


def format_filter(expr: Expr | None) -> str:
    """Render an AST as filter text that parses back to the same AST (used to send filters to a server)."""
    if expr is None:
        return ""
    if isinstance(expr, Comparison):
        return _format_comparison(expr)
    joiner = " and " if isinstance(expr, And) else " or "
    return joiner.join(f"({format_filter(item)})" if not isinstance(item, Comparison) else format_filter(item)
                       for item in expr.items)


def _format_comparison(c: Comparison) -> str:
    key = c.key if c.key and all(_is_word_char(ch) for ch in c.key) else _quote(c.key, "`")
    entity = f"{_CANONICAL_PREFIX[c.kind]}.{key}"
    if c.op in ("is null", "is not null"):
        return f"{entity} {c.op}"
    if c.op in ("in", "not in"):
        assert isinstance(c.value, tuple)
        return f"{entity} {c.op} ({', '.join(_format_value(v) for v in c.value)})"
    return f"{entity} {c.op} {_format_value(c.value)}"


def _format_value(value: object) -> str:
    return repr(float(value)) if isinstance(value, (int, float)) else _quote(str(value), "'")


def _quote(text: str, quote: str) -> str:
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote
