"""The in-memory latest-values path gives exactly what the DuckDB grouped pass gives, and steps aside
for every case it does not cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arsenale.features import latest
from arsenale.features.definitions import Entity, FeatureView
from arsenale.features.offline import as_of

customer = Entity("customer", join_keys=["customer_id"])
T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def view(**over: Any) -> FeatureView:
    kw: dict[str, Any] = {"entities": [customer], "source": "x.parquet", "timestamp": "ts", "ttl": "5m",
                          "features": {"v": "v", "label": "w"}}
    kw.update(over)
    return FeatureView("plain", **kw)


def fast_path(v: FeatureView, source: Any, files: list[str] | None, end: datetime,
              since: datetime | None = None) -> pa.Table | None:
    us = 1_000_000
    return latest.latest_values(v, source, files, end_us=round(end.timestamp() * us),
                                since_us=None if since is None else round(since.timestamp() * us),
                                fresh_us=None if v.ttl_seconds is None else round((end.timestamp() - v.ttl_seconds) * us))


def both(v: FeatureView, source: Any, end: datetime, since: datetime | None,
         monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """as_of through DuckDB and through the in-memory path, each sorted by key."""
    monkeypatch.setenv("ARSENALE_FEATURES_IN_MEMORY", "0")
    slow = as_of(v, source, end, since=since)
    monkeypatch.setenv("ARSENALE_FEATURES_IN_MEMORY", "1")
    fast = as_of(v, source, end, since=since)
    files = [source] if isinstance(source, str) else None
    if files:
        files = sorted(str(p) for p in Path(source).glob("*.parquet"))
    assert fast_path(v, source, files, end, since) is not None  # the path under test was taken
    assert fast.schema.names == slow.schema.names
    assert fast.schema.field("__ts").type == slow.schema.field("__ts").type
    order = [("customer_id", "ascending")]
    return fast.sort_by(order).to_pylist(), slow.sort_by(order).to_pylist()


rows = st.lists(st.tuples(st.one_of(st.none(), st.integers(-2, 3)), st.one_of(st.none(), st.integers(0, 12)),
                          st.one_of(st.none(), st.integers(-3, 3).map(float)),
                          st.one_of(st.none(), st.sampled_from(["a", "b", 'q"uote']))), max_size=40)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(rows, st.integers(0, 12), st.one_of(st.none(), st.integers(0, 12)), st.sampled_from(["s", "ms", "us"]),
       st.sampled_from(["int64", "int32", "string", "big"]), st.booleans(), st.booleans())
def test_in_memory_equals_duckdb(monkeypatch: pytest.MonkeyPatch, data: list[tuple[Any, ...]], end_min: int,
                                 since_min: int | None, unit: str, key_type: str, aware: bool, ttl: bool) -> None:
    keys: list[Any] = [r[0] for r in data]
    if key_type == "string":
        keys = [None if k is None else f"c{k}" for k in keys]
    elif key_type == "big":  # integer keys far apart: grouped by dictionary, not by offset
        keys = [None if k is None else k * 10**15 for k in keys]
    ktype = {"int64": pa.int64(), "int32": pa.int32(), "string": pa.string(), "big": pa.int64()}[key_type]
    times = [None if r[1] is None else T0 + timedelta(minutes=r[1]) for r in data]
    source = pa.table({"customer_id": pa.array(keys, ktype),
                       "ts": pa.array(times, pa.timestamp("us", tz="UTC")).cast(
                           pa.timestamp(unit, tz="UTC" if aware else None)),
                       "v": pa.array([r[2] for r in data], pa.float64()),
                       "w": pa.array([r[3] for r in data], pa.string())})
    end = T0 + timedelta(minutes=end_min)
    since = None if since_min is None else T0 + timedelta(minutes=since_min)
    v = view() if ttl else view(ttl=None)
    fast, slow = both(v, source, end, since, monkeypatch)
    assert fast == slow


def test_ties_on_time_take_the_last_source_row_across_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    at = pa.timestamp("us", tz="UTC")
    for i, value in enumerate([1.0, 2.0, 3.0]):
        pq.write_table(pa.table({"customer_id": pa.array([7, 8], pa.int64()), "ts": pa.array([T0, T0], at),
                                 "v": [value, -value], "w": ["x", "y"]}), tmp_path / f"part-{i}.parquet")
    fast, slow = both(view(), str(tmp_path), T0 + timedelta(minutes=1), None, monkeypatch)
    assert fast == slow
    assert [r["v"] for r in fast] == [3.0, -3.0]


def test_cases_it_does_not_cover_go_to_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nanosecond times, aggregations, a created timestamp, two join keys, files whose schemas differ and
    sources over MAX_ROWS are left to the database (None), and as_of still answers them."""
    t = pa.table({"customer_id": [1, 1], "ts": pa.array([T0, T0 + timedelta(seconds=1)],
                                                       pa.timestamp("ns", tz="UTC")),
                  "v": [1.0, 2.0], "w": ["a", "b"], "cr": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
                  "region": ["x", "x"]})
    end = T0 + timedelta(minutes=1)
    assert fast_path(view(), t, None, end) is None  # ns
    t = t.set_column(1, "ts", t.column("ts").cast(pa.timestamp("us", tz="UTC")))
    assert fast_path(view(), t, None, end) is not None
    agg = view(features={"v": "v", "v_sum": "sum(v) over 1h"})
    assert fast_path(agg, t, None, end) is None
    assert fast_path(view(created_timestamp="cr"), t, None, end) is None
    two = FeatureView("two", entities=[Entity("cr_", join_keys=["customer_id", "region"])], source="x.parquet",
                      timestamp="ts", features={"v": "v"})
    assert fast_path(two, t, None, end) is None
    pq.write_table(t, tmp_path / "a.parquet")
    pq.write_table(t.set_column(2, "v", pa.array(["1", "2"])), tmp_path / "b.parquet")
    files = [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    assert fast_path(view(), files, files, end) is None
    monkeypatch.setattr(latest, "MAX_ROWS", 1)
    assert fast_path(view(), t, None, end) is None
    assert as_of(view(), t, end).to_pylist()[0]["v"] == 2.0
