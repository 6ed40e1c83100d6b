"""A drift report as one HTML file that can be mailed, archived or attached to a ticket and opened offline.

    html = render_report(monitoring.drift(ref, cur), quality=check_quality(contract, cur),
                         reference=ref, current=cur, generated_at_ms=now_ms)

The file needs nothing else: the CSS is inline, there is no script, font or image to fetch, and
the charts are inline SVG drawn here. A Content-Security-Policy meta tag forbids fetching anything
at all, so the file behaves the same on an air-gapped laptop as online. Column names, categories,
notes and messages come from data, so the Jinja2 template autoescapes every one of them; the
Python side only produces numbers (coordinates, SVG path commands) and plain strings.

Per column the chart overlays the reference and current distributions as shares (so samples of
different sizes compare). Numbers are binned on 30 equal bins over the 0.5th–99.5th percentiles of
both sides (the outer bins hold the tails, so one absurd value cannot flatten the chart), computed
from the values when `reference`/`current` are data, or from a `ReferenceProfile`'s sketch or a
contract profile's histogram otherwise (counts spread uniformly within a bin). Categories show the
eight most common (by the larger of both shares), the rest summed. A `DriftReport` keeps no
distributions, so without `reference` and `current` a column's chart says so.

The same inputs give the same bytes: no random ids, no clock (the time shown is `generated_at_ms`).
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import numpy as np

from arsenale.errors import InvalidInput
from arsenale.monitoring import stattests
from arsenale.monitoring.drift import ColumnDrift, DriftReport
from arsenale.monitoring.quality import QualityReport
from arsenale.monitoring.sketch import CategoricalSketch, Frame, NumericSketch, ReferenceProfile

__all__ = ["render_report"]

BINS = 30
TAIL = 0.005  # share of each side left to the outer bins
TOP_CATEGORIES = 8
WIDTH, HEIGHT, AXIS = 260, 64, 14  # chart px: plot area, then a line of axis labels
_TEMPLATES = Path(__file__).parent / "templates"


# ---------------------------------------------------------------- one side of a column

@dataclass(frozen=True)
class _Numbers:
    """A numeric distribution as a CDF: the sorted values themselves, or bin edges with cumulative counts."""

    points: np.ndarray
    cumulative: np.ndarray | None  # None: `points` are the sorted values
    total: int

    def cdf(self, x: np.ndarray) -> np.ndarray:
        if self.cumulative is None:
            return np.asarray(np.searchsorted(self.points, x, side="right") / self.total)
        return np.asarray(np.interp(x, self.points, self.cumulative) / self.total)

    def quantile(self, p: float) -> float:
        if self.cumulative is None:
            return float(np.quantile(self.points, p))
        return float(np.interp(p * self.total, self.cumulative, self.points))


_Side = _Numbers | dict[str, int] | None


def _values(values: np.ndarray) -> _Numbers | None:
    return _Numbers(np.sort(values), None, len(values)) if len(values) else None


def _binned(edges: np.ndarray, counts: np.ndarray) -> _Numbers | None:
    total = int(counts.sum())
    return _Numbers(edges, np.concatenate([[0], np.cumsum(counts)]), total) if total else None


def _from_sketch(sk: Any) -> _Side:
    if isinstance(sk, CategoricalSketch):
        return dict(sk.counts) or None
    assert isinstance(sk, NumericSketch)
    if sk.values is not None:
        return _values(np.asarray(sk.values, dtype=np.float64))
    if sk.width is None or not sk.counts:
        return None
    edges = (sk.first_bin or 0) + np.arange(len(sk.counts) + 1, dtype=np.float64)
    return _binned(edges * sk.width, np.asarray(sk.counts, dtype=np.float64))


def _from_contract(fp: Any) -> _Side:
    if fp.kind == "categorical":
        return dict(fp.frequencies or {}) or None
    if fp.histogram is None:
        return None
    return _binned(np.asarray(fp.histogram.edges, dtype=np.float64),
                   np.asarray(fp.histogram.counts, dtype=np.float64))


class _Source:
    """Where the distributions of one side come from: data, a ReferenceProfile, a contract profile, or nothing."""

    def __init__(self, data: Any, field_name: str, categorical: list[str]) -> None:
        self.frame: Frame | None = None
        self.sketches: dict[str, Any] = {}
        self.features: dict[str, Any] | None = None
        contract = sys.modules.get("arsenale.registry.contract")
        if contract is not None and isinstance(data, contract.Contract):
            data = data.profile
        if data is None:
            return
        if isinstance(data, ReferenceProfile):
            self.sketches = dict(data.columns)
        elif contract is not None and isinstance(data, contract.Profile):
            self.features = {f.name: f for f in [*data.features, *([data.label] if data.label else [])]}
        else:
            self.frame = Frame(data, field=field_name, categorical=categorical)

    def side(self, col: ColumnDrift) -> _Side:
        name, kind = col.name, col.kind
        if self.features is not None:
            fp = self.features.get(name)
            return _from_contract(fp) if fp is not None and fp.kind == kind else None
        if name in self.sketches:
            return _from_sketch(self.sketches[name]) if self.sketches[name].kind == kind else None
        if self.frame is None or name not in self.frame or self.frame.kind(name) != kind:
            return None
        if kind == "numeric":
            return _values(self.frame.numeric(name).values)
        return self.frame.categorical(name).counts or None


# ---------------------------------------------------------------- charts (numbers only; the template escapes text)

@dataclass
class _Bar:
    x: float
    y: float
    width: float
    height: float
    side: str  # "ref" or "cur", the CSS class


@dataclass
class _Group:
    label: str  # full category, shown as a tooltip
    short: str  # as much as fits under the bars
    center: float
    reference: str
    current: str
    bars: list[_Bar]


@dataclass
class _Chart:
    paths: list[tuple[str, str]] = field(default_factory=list)  # (side, SVG path) of a histogram overlay
    groups: list[_Group] = field(default_factory=list)
    ticks: list[tuple[float, str, str]] = field(default_factory=list)  # x, text-anchor, text
    note: str | None = None  # what is missing, or how the chart was drawn
    width: int = WIDTH
    height: int = HEIGHT + AXIS
    base: int = HEIGHT


def _f(x: float) -> str:
    return f"{x:.1f}"


def _step_path(shares: np.ndarray, top: float) -> str:
    """A filled step outline of one histogram, drawn with H/V commands to stay small."""
    step = WIDTH / len(shares)
    parts = [f"M0 {HEIGHT}"]
    for i, s in enumerate(shares):
        parts.append(f"V{_f(HEIGHT - (HEIGHT - 2) * s / top)}H{_f((i + 1) * step)}")
    parts.append(f"V{HEIGHT}Z")
    return "".join(parts)


def _numeric_chart(ref: _Numbers | None, cur: _Numbers | None) -> _Chart:
    sides = [(n, s) for n, s in (("ref", ref), ("cur", cur)) if s is not None]
    lo = min(s.quantile(TAIL) for _, s in sides)
    hi = max(s.quantile(1 - TAIL) for _, s in sides)
    if not hi > lo:  # one value only: centre it in a visible range
        pad = max(abs(lo) * 0.05, 0.5)
        lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, BINS + 1)
    shares = []
    for _, s in sides:
        c = s.cdf(edges)
        c[0], c[-1] = 0.0, 1.0  # the tails fall into the outer bins
        shares.append(np.diff(c))
    top = max(float(s.max()) for s in shares) or 1.0
    chart = _Chart(paths=[(n, _step_path(s, top)) for (n, _), s in zip(sides, shares)])
    chart.ticks = [(0.0, "start", _num(lo)), (WIDTH, "end", _num(hi))]
    return chart


def _categorical_chart(ref: dict[str, int] | None, cur: dict[str, int] | None) -> _Chart:
    totals = {n: sum(c.values()) for n, c in (("ref", ref), ("cur", cur)) if c}
    share = {n: {k: v / totals[n] for k, v in c.items()} for n, c in (("ref", ref), ("cur", cur)) if c}
    keys = sorted(set().union(*share.values()), key=lambda k: (-max(s.get(k, 0.0) for s in share.values()), k))
    shown = keys[:TOP_CATEGORIES]
    rest = keys[TOP_CATEGORIES:]
    columns = [(k, {n: s.get(k, 0.0) for n, s in share.items()}) for k in shown]
    if rest:
        columns.append((f"{len(rest)} others", {n: sum(s.get(k, 0.0) for k in rest) for n, s in share.items()}))
    top = max(v for _, sh in columns for v in sh.values()) or 1.0
    slot = WIDTH / len(columns)
    bar = min(slot * 0.4, 24.0)
    chart = _Chart()
    for i, (key, sh) in enumerate(columns):
        center = (i + 0.5) * slot
        bars = []
        for j, n in enumerate(("ref", "cur")):
            if n in sh:
                h = (HEIGHT - 2) * sh[n] / top
                bars.append(_Bar(round(center - bar + j * bar, 1), round(HEIGHT - h, 1), round(bar, 1),
                                 round(h, 1), n))
        fits = max(1, int(slot // 6.5))
        chart.groups.append(_Group(key, key if len(key) <= fits else key[:max(1, fits - 1)] + "…", round(center, 1),
                                   _pct(sh.get("ref")), _pct(sh.get("cur")), bars))
    return chart


def _chart(col: ColumnDrift, ref: _Side, cur: _Side) -> _Chart:
    if col.kind == "numeric":
        nums = [s if isinstance(s, _Numbers) else None for s in (ref, cur)]
        chart = _numeric_chart(*nums) if any(nums) else None
    else:
        cats = [s if isinstance(s, dict) else None for s in (ref, cur)]
        chart = _categorical_chart(*cats) if any(cats) else None
    if chart is None:
        return _Chart(note="no distribution: pass reference= and current= to draw it")
    missing = [n for n, s in (("reference", ref), ("current", cur)) if s is None]
    if missing:
        chart.note = f"no {missing[0]} values to draw"
    return chart


# ---------------------------------------------------------------- rows and the page

def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else format(x, f".{digits}g")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _example(x: Any) -> str:
    """A quality issue's example value, floats without their binary noise (31.740000000000002 → 31.74)."""
    return _num(x, 10) if isinstance(x, float) else str(x)


@dataclass
class _Row:
    col: ColumnDrift
    verdict: Literal["drifted", "ok", "skipped"]
    method_title: str
    statistic: str
    score: str
    threshold: str
    chart: _Chart


def _row(col: ColumnDrift, ref: _Side, cur: _Side) -> _Row:
    m = stattests.method(col.method) if col.method else None
    statistic = _num(col.statistic)
    if col.approximate and col.statistic is not None:
        statistic = f"≈{statistic} ± {_num(col.error_bound, 2)}"
    threshold = "—"
    if m is not None and col.threshold is not None:
        op = "<" if m.kind == "p_value" else ("≥" if m.inclusive else ">")
        threshold = f"{'p' if m.kind == 'p_value' else 'd'} {op} {_num(col.threshold)}"
    verdict: Literal["drifted", "ok", "skipped"] = (
        "skipped" if col.status == "skipped" else "drifted" if col.drifted else "ok")
    return _Row(col, verdict, m.title if m else "", statistic, _num(col.score, 3), threshold, _chart(col, ref, cur))


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_report(drift: DriftReport, *, quality: QualityReport | None = None,
                  title: str = "Arsenale monitoring report", reference: Any = None, current: Any = None,
                  generated_at_ms: int | None = None) -> str:
    """The drift report (and the data-quality issues, when given) as one self-contained HTML page.

    `reference` and `current` are what `drift` compared (a DataFrame, an Arrow table, a Parquet path; the
    reference may also be a `ReferenceProfile` or a contract or its profile); they are read only to draw
    the distributions. `generated_at_ms` (epoch milliseconds) is the time printed; none is printed
    without it, so the output depends on the arguments alone."""
    if not isinstance(drift, DriftReport):
        raise InvalidInput(f"drift must be a DriftReport, not {type(drift).__name__}", field="drift")
    if quality is not None and not isinstance(quality, QualityReport):
        raise InvalidInput(f"quality must be a QualityReport, not {type(quality).__name__}", field="quality")
    if generated_at_ms is not None and (isinstance(generated_at_ms, bool) or not isinstance(generated_at_ms, int)):
        raise InvalidInput(f"generated_at_ms must be epoch milliseconds, got {generated_at_ms!r}",
                           field="generated_at_ms")
    every = [*drift.columns.values(), *([drift.prediction] if drift.prediction else [])]
    categorical = [c.name for c in every if c.kind == "categorical"]
    ref, cur = _Source(reference, "reference", categorical), _Source(current, "current", categorical)
    rank = {"drifted": 0, "ok": 1, "skipped": 2}
    rows = sorted((_row(c, ref.side(c), cur.side(c)) for c in drift.columns.values()),
                  key=lambda r: rank[r.verdict])  # stable: the report's column order within each verdict
    when = None
    if generated_at_ms is not None:
        when = dt.datetime.fromtimestamp(generated_at_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    issues = sorted(quality.issues, key=lambda i: i.severity != "error") if quality is not None else []
    return _environment().get_template("report.html").render(
        title=title, generated=when, report=drift, rows=rows, issues=issues, quality=quality,
        prediction=_row(drift.prediction, ref.side(drift.prediction), cur.side(drift.prediction))
        if drift.prediction else None,
        share=_pct(drift.drift_share), share_threshold=_pct(drift.drift_share_threshold), pct=_pct, example=_example)
