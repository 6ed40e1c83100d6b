"""A gate run as one self-contained HTML page: the verdict, every check, the confidence interval of each gain
drawn against zero and the margin, and the per-group and per-slice tables the checks left in `details`,
drawn as bars. Inline SVG and CSS only, so it opens offline and can be attached to a CI job as is."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from arsenale.gates.results import CheckResult

__all__ = ["render_html"]

WIDTH = 420
BAR_HEIGHT = 14
MAX_TABLE_ROWS = 200


@dataclass
class _Interval:
    """A forest-plot row: the gain and its interval on an axis that always shows zero."""

    low: float
    gain: float
    high: float
    zero: float
    label_low: str
    label_high: str


@dataclass
class _Bars:
    rows: list[tuple[str, list[tuple[str, float, str]]]]  # label, [(series, width px, text)]
    height: int


@dataclass
class _Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    more: int
    bars: _Bars | None


def _x(value: float, lo: float, hi: float) -> float:
    return round(8 + (WIDTH - 16) * (value - lo) / (hi - lo), 1)


def _interval(r: CheckResult) -> _Interval | None:
    if r.interval is None:
        return None
    i = r.interval
    lo, hi = min(i.low, 0.0), max(i.high, 0.0)
    pad = (hi - lo) * 0.1 or 0.01
    lo, hi = lo - pad, hi + pad
    return _Interval(_x(i.low, lo, hi), _x(i.gain, lo, hi), _x(i.high, lo, hi), _x(0.0, lo, hi),
                     f"{i.low:+.4f}", f"{i.high:+.4f}")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"
    if value is None:
        return "—"
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _bars(rows: list[dict[str, Any]], label: str) -> _Bars | None:
    """Candidate beside champion per row when both are there (or their metric, for nested tables), else the
    first numeric column."""
    series: list[str] = []
    for pair in (("candidate", "champion"), ("candidate metric", "champion metric")):
        series = [s for s in pair if any(_number(r.get(s)) is not None for r in rows)]
        if series:
            break
    if not series:
        numeric = [k for k in rows[0] if k != label and any(_number(r.get(k)) is not None for r in rows)]
        series = numeric[:1]
    if not series:
        return None
    values = [_number(r.get(s)) for r in rows for s in series]
    top = max((abs(v) for v in values if v is not None), default=0.0) or 1.0
    drawn = []
    for r in rows[:40]:
        drawn.append((_text(r.get(label)), [(s, round((WIDTH - 120) * abs(v) / top, 1), _text(v))
                                             for s in series if (v := _number(r.get(s))) is not None]))
    return _Bars(drawn, len(drawn) * (BAR_HEIGHT * len(series) + 6))


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One level of nesting spelt out: {"candidate": {"tpr": 1}} becomes {"candidate tpr": 1}."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k} "))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _records(value: Any) -> list[dict[str, Any]] | None:
    """A list of records, or a mapping of names to records (the name becomes the first column)."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_flat(v) for v in value]
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return [{"name": k, **_flat(v)} for k, v in value.items()]
    if isinstance(value, dict) and value and not any(isinstance(v, (dict, list)) for v in value.values()):
        return [{"name": k, "value": v} for k, v in value.items()]  # e.g. each column's outcome
    return None


def _tables(details: dict[str, Any]) -> list[_Table]:
    """Every table of records in `details` (and its bars), whatever check left it."""
    out = []
    for key, raw in details.items():
        value = _records(raw)
        if value is None:
            continue
        columns = list(dict.fromkeys(k for row in value for k in row))
        flat = [c for c in columns if not isinstance(value[0].get(c), (dict, list))]
        label = flat[0] if flat else columns[0]
        rows = [[_text(row.get(c)) for c in flat] for row in value[:MAX_TABLE_ROWS]]
        out.append(_Table(key.replace("_", " "), flat, rows, max(0, len(value) - MAX_TABLE_ROWS),
                          _bars(value, label)))
    return out


def _facts(details: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k.replace("_", " "), ", ".join(map(_text, v)) if isinstance(v, list) else _text(v))
            for k, v in details.items() if _records(v) is None and not isinstance(v, dict)]  # tables apart


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def render_html(title: str, results: Sequence[CheckResult], *, notes: Sequence[str] = (),
                subtitle: str | None = None) -> str:
    """The page; its content depends on the arguments alone (no clock, no random ids)."""
    checks = [{"r": r, "interval": _interval(r), "tables": _tables(r.details), "facts": _facts(r.details)}
              for r in results]
    return _environment().get_template("gate.html").render(
        title=title, subtitle=subtitle, passed=all(r.passed for r in results), checks=checks, notes=list(notes),
        failed=sum(not r.passed for r in results), width=WIDTH, bar_height=BAR_HEIGHT)
