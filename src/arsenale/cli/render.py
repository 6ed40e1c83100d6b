"""Output helpers shared by every command: Rich tables for people, `--json` for scripts.

Tables show timestamps as ISO 8601 (UTC); JSON keeps the raw epoch
milliseconds. JSON never contains bare NaN or Infinity (not valid JSON):
non-finite floats are written as the strings "NaN", "Infinity", "-Infinity",
as the HTTP API does.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from arsenale.units import human_size

MISSING = "—"

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


PIPE_WIDTH = 1000  # output to a pipe or file is not wrapped: one table row stays on one line


def console(stderr: bool = False) -> Console:
    """A console on the current stdout (or stderr); built per call because tests swap the streams."""
    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out = Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return out


def err_console() -> Console:
    return console(stderr=True)


def print_error(message: str) -> None:
    err_console().print(Text(f"error: {message}", style="red"), soft_wrap=True)


def print_message(message: str, style: str | None = None) -> None:
    console().print(Text(message, style=style or ""), soft_wrap=True)


# ---- JSON ------------------------------------------------------------------------------


def jsonable(obj: Any) -> Any:
    """`obj` (pydantic models, mappings, lists, scalars) as plain JSON-safe values."""
    if isinstance(obj, BaseModel):
        return jsonable(obj.model_dump(mode="json"))
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False))


# ---- values in tables --------------------------------------------------------------------


def iso(ms: int | None) -> str:
    """Epoch milliseconds as ISO 8601 UTC, e.g. 2024-05-01T12:00:00Z."""
    if ms is None:
        return MISSING
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # out of the calendar's range: show it raw
        return str(ms)


def number(value: float | None) -> str:
    if value is None:
        return MISSING
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def size(n: int | None) -> str:
    return human_size(n)


def cell(value: Any, style: str = "") -> Text:
    """A table cell shown literally: user text such as '[red]' is never read as Rich markup."""
    if value is None or value == "":
        return Text(MISSING if value is None else "", style="dim")
    return Text(str(value), style=style)


def pairs(mapping: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))


def table(*columns: str, title: str | None = None, fixed: Iterable[str] = ()) -> Table:
    """A table whose cells fold when narrow, except `fixed` columns (ids, timestamps): one line each."""
    keep = set(fixed)
    t = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, show_edge=False)
    for name in columns:
        t.add_column(name, overflow="fold", no_wrap=name in keep)
    return t


def key_value_table(rows: Iterable[tuple[str, Any]], title: str, value_header: str = "value") -> Table:
    t = table("key", value_header, title=title)
    for key, value in rows:
        t.add_row(cell(key), cell(value))
    return t


def show(*renderables: Any) -> None:
    out = console()
    for r in renderables:
        out.print(r)
