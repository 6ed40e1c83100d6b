"""Point-in-time retrieval: the training-data half of the feature store.

For each entity row (join keys k, time t) every feature is computed only from what was known at t, so a
model is trained on the values it would have seen in production (no leakage from the future):

- a plain column is the value of the latest event with keys k and event time <= t (an event at exactly t
  counts); among events at the same time the greatest created timestamp wins, then the last source row. A
  view's TTL turns a value whose event is older than t - ttl into null;
- `fn(column) over w` aggregates exactly the events with keys k in (t - w, t]: as of each row's own time,
  not a precomputed bucket;
- an entity row without events keeps its place: its features are null (counts 0). Rows are never dropped
  nor reordered, and the caller's columns come back unchanged.

How: a DuckDB in-memory database per thread, reused across calls (each call drops what it registered and
resets its settings; spills go to a temporary directory under a memory limit), reading Arrow tables and
Parquet files in place. Times are compared as integer microseconds since the epoch in UTC (naive times
are taken as UTC). Plain columns come from an ASOF join on (event time, created time, source row), a total
order, so ties resolve identically on any number of threads. Aggregations union the
entity rows into the event stream and evaluate RANGE window frames over those microseconds, which is what
makes them exact at every row's own time.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from arsenale.errors import InvalidInput
from arsenale.features import latest
from arsenale.features.definitions import Feature, FeatureView, OnDemandFeature

__all__ = ["ViewRequest", "as_of", "retrieve"]

# A timestamp string that names its offset: a time of day followed by Z, UTC/GMT or ±hh[:mm].
_AWARE = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[zZ]|UTC|GMT|[+-]\d\d(?::?\d\d)?)\s*$"
_AWARE_RE = re.compile(_AWARE)  # the same pattern runs in DuckDB (RE2) for string columns of a source
_INTEGER_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                            "UINTEGER", "UBIGINT", "UHUGEINT"})
_WIDE_INTEGER_TYPES = frozenset({"HUGEINT", "UBIGINT", "UHUGEINT"})
_TIME_TYPES = frozenset({"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE",
                         "DATE"})
_MIN_BIGINT, _MAX_BIGINT = -(2**63), 2**63 - 1
_FILE_ROWS = 2**40  # a Parquet source row's order is (file index, row in file), packed as index * 2^40 + row
_SEQ = "__arsenale_seq"  # the source row order, added to each source


@dataclass(frozen=True)
class ViewRequest:
    """Some features of one view, read from one source (an Arrow table, or Parquet files read in place)."""

    view: FeatureView
    source: pa.Table | str | list[str]
    features: tuple[str, ...]
    output_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.view, FeatureView):
            raise InvalidInput(f"view must be a FeatureView; got {type(self.view).__name__}", field="view")
        if isinstance(self.features, str) or not isinstance(self.features, Sequence) or not self.features:
            raise InvalidInput(f"{self.view.name}: features must be a non-empty list of feature names",
                               field=f"{self.view.name}.features")
        object.__setattr__(self, "features", tuple(self.features))
        for name in self.features:
            self.view.feature(name)  # raises InvalidInput naming the view and its features
        if self.output_names is not None:
            names = self.output_names
            if isinstance(names, str) or not isinstance(names, Sequence) or len(names) != len(self.features):
                raise InvalidInput(f"{self.view.name}: output_names must give one name per requested feature "
                                   f"({len(self.features)})", field="output_names")
            if not all(isinstance(n, str) and n for n in names):
                raise InvalidInput(f"{self.view.name}: output names must be non-empty strings", field="output_names")
            object.__setattr__(self, "output_names", tuple(names))

    @property
    def columns(self) -> tuple[str, ...]:
        """The result's column name for each requested feature."""
        return self.output_names if self.output_names is not None else self.features


def retrieve(entity_df: pd.DataFrame | pa.Table, requests: Sequence[ViewRequest],
             on_demand: Sequence[OnDemandFeature] = (), *, timestamp_column: str = "event_timestamp",
             memory_limit: str | None = None, threads: int | None = None) -> pd.DataFrame:
    """The entity rows, all of them in their order with their columns unchanged, plus one column per
    requested feature (in request order), then one per on-demand feature, each as of its row's time."""
    frame = _entity_frame(entity_df)
    requests = list(requests)
    on_demand = list(on_demand)
    _check_requests(requests, on_demand)
    _check_output_names(frame, requests, on_demand)
    _check_on_demand_inputs(frame, requests, on_demand)
    entities = _entities(frame, requests, timestamp_column)
    columns: dict[str, pa.ChunkedArray] = {}
    with _connection(memory_limit, threads) as con:
        _register(con, "__entities", entities.table)
        for i, request in enumerate(_merged(requests)):
            columns.update(_retrieve_view(con, i, request, entities))
    result = _attach(frame, {c: columns[c] for r in requests for c in r.columns})
    return _apply_on_demand(result, requests, on_demand)


def _merged(requests: list[ViewRequest]) -> list[ViewRequest]:
    """Requests that read the same events the same way (same source, keys, times and TTL) as one: several
    views over one table cost one join and one window pass, not one each."""
    groups: dict[tuple[Any, ...], list[ViewRequest]] = {}
    for r in requests:
        v = r.view
        source = id(r.source) if isinstance(r.source, (pa.Table, pd.DataFrame)) else (
            str(r.source) if isinstance(r.source, (str, os.PathLike)) else tuple(map(str, r.source)))
        groups.setdefault((source, v.join_keys, v.timestamp, v.created_timestamp, v.ttl_seconds), []).append(r)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        features, names, outputs = [], [], []
        for j, r in enumerate(group):
            for name, column in zip(r.features, r.columns):
                features.append(r.view.feature(name).model_copy(update={"name": f"{j}:{name}"}))
                names.append(f"{j}:{name}")
                outputs.append(column)
        view = group[0].view.model_copy(update={"features": tuple(features)})
        out.append(ViewRequest(view, group[0].source, tuple(names), tuple(outputs)))
    return out


def as_of(view: FeatureView, source: pa.Table | str | list[str], end: datetime, *, since: datetime | None = None,
          entities: pa.Table | None = None, memory_limit: str | None = None, threads: int | None = None
          ) -> pa.Table:
    """What materialization writes: for each entity whose values may have changed since `since` (one with an
    event in (since - longest window, end]; any entity with an event at or before `end` without `since`),
    its keys, `__ts` (its latest event time up to `end`, UTC) and every feature of the view as of `end` —
    the values `retrieve` gives an entity row at `end`, in one grouped pass over the events instead of a
    join. `entities` (a table of join keys) limits it to those entities. A view of plain columns over a
    source that fits in memory is answered without the database (`arsenale.features.latest`)."""
    request = ViewRequest(view, source, tuple(view.feature_names))
    end_us = _micros(end.timestamp())
    if entities is None and memory_limit is None and threads is None and latest.in_memory_allowed():
        paths = isinstance(source, (str, os.PathLike, list, tuple))
        files = _parquet_files(source, f"{view.name}.source") if paths else None
        found = latest.latest_values(
            view, source, files, end_us=end_us, since_us=None if since is None else _micros(since.timestamp()),
            fresh_us=None if view.ttl_seconds is None else end_us - _micros(view.ttl_seconds))
        if found is not None:
            return found
    with _connection(memory_limit, threads) as con:
        relation = "__source0"
        _register_source(con, relation, request)
        types = _source_types(con, relation, request)
        ts = _micros_sql(view.timestamp, types[view.timestamp], con, relation, f"{view.name}.{view.timestamp}")
        created = "0"
        if view.created_timestamp:
            micros = _micros_sql(view.created_timestamp, types[view.created_timestamp], con, relation,
                                 f"{view.name}.{view.created_timestamp}")
            created = f"coalesce({micros}, {_MIN_BIGINT})"
        inputs = {c: f"__c{i}" for i, c in enumerate(dict.fromkeys(
            f.source_column for f in view.features if f.source_column is not None))}
        plan = _Plan(request, relation, (), (), None, (), inputs, {c: types[c] for c in inputs})
        keys = [_quote(k) for k in view.join_keys]
        where = [f"__ts <= {end_us}", "__ts IS NOT NULL", *(f"{k} IS NOT NULL" for k in keys)]
        if since is not None:
            longest = max((_micros(f.aggregation.window_seconds) for f in view.features if f.aggregation), default=0)
            where.append(f"__ts > {_micros(since.timestamp()) - longest}")
        events = (f"SELECT {', '.join(keys)}, {ts} AS __ts, {created} AS __cr, {_SEQ} AS __seq"
                  f"{''.join(f', {_quote(c)} AS {a}' for c, a in inputs.items())} FROM {relation}")
        if entities is not None:
            events += _subset_join(con, entities, view, types)
        plain = [i for i, f in enumerate(view.features) if f.aggregation is None]
        grouped = [f"{', '.join(keys)}", "max(__ts) AS __last"]
        # The latest row's value of each plain feature. (time, row) packed in one 128-bit integer compares
        # faster than a struct; with a created time the order has three parts and stays a struct. One
        # arg_max per feature is faster than one over a struct of all their values.
        order = ("struct_pack(t := __ts, c := __cr, q := __seq)" if view.created_timestamp
                 else "__ts::HUGEINT * 18446744073709551616 + __seq")
        for i, feature in enumerate(view.features):
            if feature.aggregation is None:
                grouped.append(f"arg_max_null({inputs[str(feature.column)]}, __order) AS __f{i}")
            else:
                span = max(_micros(feature.aggregation.window_seconds), 1)
                grouped.append(f"{_aggregate_sql(plan, feature, where=f'__ts > {end_us - span}')} AS __f{i}")
        fresh = "true" if view.ttl_seconds is None else f"__last >= {end_us - _micros(view.ttl_seconds)}"
        values = [f"CASE WHEN {fresh} THEN __f{i} END AS __f{i}" if i in plain else f"__f{i}"
                  for i in range(len(view.features))]
        events = f"SELECT *, {order} AS __order FROM ({events})" if plain else events
        sql = (f"SELECT {', '.join(keys)}, make_timestamp(__last) AS __ts, {', '.join(values)} FROM ("
               f"SELECT {', '.join(grouped)} FROM ({events}) WHERE {' AND '.join(where)} "
               f"GROUP BY {', '.join(keys)})")
        table = con.sql(sql).to_arrow_table()
    names = [*view.join_keys, "__ts", *view.feature_names]
    table = table.rename_columns(names)
    return table.set_column(len(view.join_keys), "__ts", table.column("__ts").cast(pa.timestamp("us", tz="UTC")))


def _subset_join(con: duckdb.DuckDBPyConnection, entities: pa.Table, view: FeatureView, types: dict[str, str]
                 ) -> str:
    """` SEMI JOIN` the registered entity subset on the view's keys, compared as `retrieve` compares them."""
    missing = [k for k in view.join_keys if k not in entities.column_names]
    if missing:
        raise InvalidInput(f"entities lack the join key(s) {missing}", field="entities")
    _register(con, "__subset", entities.select(list(view.join_keys)))
    subset_types = {str(r[0]): str(r[1]) for r in con.sql("DESCRIBE SELECT * FROM __subset").fetchall()}
    on = []
    for k in view.join_keys:
        common = _key_type(k, subset_types[k], types[k], view.name)
        on.append(f"CAST(s.{_quote(k)} AS {common}) = CAST(e.{_quote(k)} AS {common})")
    return f" e SEMI JOIN __subset s ON {' AND '.join(on)}"


# ---------------------------------------------------------------------------------------------- checks


def _entity_frame(entity_df: Any) -> pd.DataFrame:
    """The rows as the pandas frame the result is built on (an Arrow table converts once, up front)."""
    if isinstance(entity_df, pa.Table):
        return entity_df.to_pandas()
    if isinstance(entity_df, pd.DataFrame):
        return entity_df
    raise InvalidInput(f"entity_df must be a pandas DataFrame or an Arrow table; got {type(entity_df).__name__}",
                       field="entity_df")


def _check_requests(requests: list[Any], on_demand: list[Any]) -> None:
    """Wrong object types fail here with a message, not deep inside as an AttributeError."""
    for i, request in enumerate(requests):
        if not isinstance(request, ViewRequest):
            raise InvalidInput(f"requests[{i}] must be a ViewRequest; got {type(request).__name__}",
                               field="requests")
    for i, feature in enumerate(on_demand):
        if not isinstance(feature, OnDemandFeature):
            raise InvalidInput(f"on_demand[{i}] must be an OnDemandFeature; got {type(feature).__name__}",
                               field="on_demand")


def _check_output_names(frame: pd.DataFrame, requests: list[ViewRequest], on_demand: list[OnDemandFeature]) -> None:
    """Every added column needs a name of its own: a clash would silently overwrite the caller's data."""
    taken = set(frame.columns)
    added: set[str] = set()
    outputs = [(c, f"output_names.{c}") for r in requests for c in r.columns]
    outputs += [(f.name, f"on_demand.{f.name}") for f in on_demand]
    for name, field in outputs:
        if name in taken:
            raise InvalidInput(f"output column {name!r} is already a column of entity_df; rename it with "
                               "output_names", field=field)
        if name in added:
            raise InvalidInput(f"output column {name!r} is produced twice; rename one with output_names",
                               field=field)
        added.add(name)


def _check_on_demand_inputs(frame: pd.DataFrame, requests: list[ViewRequest],
                            on_demand: list[OnDemandFeature]) -> None:
    """Fail before any work when an on-demand feature could not be computed at the end."""
    available = set(frame.columns) | {c for r in requests for c in r.columns}
    produced = _produced(requests)
    for feature in on_demand:
        for ref in feature.input_refs():
            if ref.view is None and ref.feature not in available:
                raise InvalidInput(f"on-demand feature {feature.name!r} needs {ref.feature!r}, which is neither "
                                   "a column of entity_df nor a retrieved feature", field=f"on_demand.{feature.name}")
            if ref.view is not None and (ref.view, ref.feature) not in produced:
                raise InvalidInput(f"on-demand feature {feature.name!r} needs {ref}, which is not among the "
                                   "retrieved features; request it too", field=f"on_demand.{feature.name}")
        available.add(feature.name)


def _produced(requests: list[ViewRequest]) -> dict[tuple[str, str], str]:
    """(view name, feature name) → the result column holding it."""
    return {(r.view.name, f): c for r in requests for f, c in zip(r.features, r.columns)}


def _null_error(frame: pd.DataFrame, column: str, what: str) -> None:
    """A row without a key or a time cannot be placed: refuse it, saying how many and where the first is."""
    nulls = frame[column].isna().to_numpy()
    if nulls.any():
        first = int(np.argmax(nulls))
        default_index = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
        where = f"row {first}" if default_index else f"row {first} (index label {frame.index[first]!r})"
        raise InvalidInput(f"entity_df has {int(nulls.sum())} rows with a null {what} {column!r}; the first is "
                           f"{where}", field=f"entity_df.{column}")


# ------------------------------------------------------------------------------------------ timestamps


def _utc_micros(values: pd.Series, field: str) -> np.ndarray:
    """Microseconds since the epoch (UTC; naive values are taken as UTC), sub-microsecond digits floored."""
    parsed = _as_datetimes(values, field)
    ints = parsed.array.asi8  # the epoch counts in the series' own unit (UTC for aware values)
    scale = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}[parsed.dt.unit]
    return ints // 1000 if scale is None else ints * scale


def _as_datetimes(values: pd.Series, field: str) -> pd.Series:
    """A datetime series (naive or zoned, any unit). Strings and Python objects are parsed; a column mixing
    naive and zoned values is refused, since guessing a zone for the naive ones would shift them silently."""
    if isinstance(values.dtype, pd.ArrowDtype):
        values = pa.chunked_array(pa.array(values)).to_pandas()
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    if not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
        raise InvalidInput(f"{field} must hold datetimes or ISO-8601 strings; got {values.dtype}", field=field)
    try:
        return pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        pass  # mixed offsets, or naive mixed with aware: tell which
    aware = values.map(_is_aware, na_action="ignore").dropna().astype(bool)
    if aware.any() and not aware.all():
        raise InvalidInput(f"{field} mixes timestamps with and without a time zone (first naive at row "
                           f"{int(np.argmin(aware.to_numpy()))}); give all of them an offset, or none",
                           field=field)
    try:
        return pd.to_datetime(values, format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"{field} holds values that are not timestamps: {exc}", field=field) from exc


def _is_aware(value: Any) -> bool:
    """Whether one value names its zone (only asked once a whole-column parse has failed)."""
    if isinstance(value, str):
        return _AWARE_RE.search(value) is not None
    return getattr(value, "tzinfo", None) is not None


def _micros_sql(column: str, dtype: str, con: duckdb.DuckDBPyConnection, relation: str, field: str) -> str:
    """The SQL giving a source time column as UTC microseconds (the connection's time zone is UTC)."""
    ref = _quote(column)
    if dtype in _TIME_TYPES:
        return f"epoch_us({ref})"
    if dtype == "TIMESTAMPTZ_NS":  # floored to µs by arithmetic: a cast goes through ICU, 15× slower
        ns = f"epoch_ns({ref})"
        return f"(({ns} - (({ns} % 1000) + 1000) % 1000) // 1000)"
    if dtype == "VARCHAR":
        _check_time_strings(con, relation, column, field)
        return f"epoch_us(CAST({ref} AS TIMESTAMPTZ))"
    raise InvalidInput(f"{field} must be a timestamp, a date or ISO-8601 strings; it is {dtype}", field=field)


def _check_time_strings(con: duckdb.DuckDBPyConnection, relation: str, column: str, field: str) -> None:
    """String times cost one extra scan: parse failures and naive/aware mixes are errors, not silent nulls."""
    ref = _quote(column)
    aware = f"regexp_matches({ref}, {_literal(_AWARE)})"
    [(n_aware, n_naive, n_bad)] = con.sql(
        f"SELECT count(*) FILTER (WHERE {aware}), count(*) FILTER (WHERE NOT {aware}), count(*) FILTER "
        f"(WHERE TRY_CAST({ref} AS TIMESTAMPTZ) IS NULL) - count(*) FILTER (WHERE {ref} IS NULL) FROM {relation}"
    ).fetchall()
    if n_aware and n_naive:
        raise InvalidInput(f"{field} mixes timestamps with ({n_aware}) and without ({n_naive}) a time zone",
                           field=field)
    if n_bad:
        raise InvalidInput(f"{field} holds {n_bad} values that are not ISO-8601 timestamps", field=field)


# -------------------------------------------------------------------------------------------- entities


@dataclass(frozen=True)
class _Entities:
    """What the database needs of the entity rows: row position `__row`, time `__ts` in UTC microseconds,
    and the join keys under internal names `__e0, __e1, ...` (so no user column can collide with them)."""

    table: pa.Table
    keys: dict[str, str]  # join key → its internal column
    bounds: tuple[int, int] | None  # earliest and latest time: events nobody can see are skipped early


def _entities(frame: pd.DataFrame, requests: list[ViewRequest], timestamp_column: str) -> _Entities:
    if timestamp_column not in frame.columns:
        raise InvalidInput(f"entity_df has no timestamp column {timestamp_column!r}; name it with "
                           "timestamp_column", field=f"entity_df.{timestamp_column}")
    keys = _entity_keys(frame, requests)
    for key in keys:
        _null_error(frame, key, "join key")
    _null_error(frame, timestamp_column, "timestamp")
    columns: dict[str, pa.Array] = {
        "__row": pa.array(np.arange(len(frame), dtype=np.int64)),
        "__ts": pa.array(_utc_micros(frame[timestamp_column], f"entity_df.{timestamp_column}")),
    }
    for i, key in enumerate(keys):
        try:
            columns[f"__e{i}"] = pa.Array.from_pandas(frame[key])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(f"join key {key!r} mixes value types: {exc}", field=f"entity_df.{key}") from exc
    ts = columns["__ts"].to_numpy()
    bounds = (int(ts.min()), int(ts.max())) if len(ts) else None
    return _Entities(pa.table(columns), {k: f"__e{i}" for i, k in enumerate(keys)}, bounds)


def _entity_keys(frame: pd.DataFrame, requests: list[ViewRequest]) -> list[str]:
    """Every join key the requested views need, each once, checked to be a column of entity_df."""
    keys: list[str] = []
    for request in requests:
        for key in request.view.join_keys:
            if key not in frame.columns:
                raise InvalidInput(f"entity_df has no column {key!r}, a join key of view {request.view.name!r}",
                                   field=f"entity_df.{key}")
            if key not in keys:
                keys.append(key)
    return keys


# ---------------------------------------------------------------------------------------------- sources


_LOCAL = threading.local()
_SPILL: tempfile.TemporaryDirectory[str] | None = None


def _cached_connection() -> duckdb.DuckDBPyConnection:
    """This thread's database (opening one costs ~20 ms, a third of a materialization), rebuilt after a fork."""
    global _SPILL
    con = getattr(_LOCAL, "con", None)
    if con is not None and getattr(_LOCAL, "pid", None) == os.getpid():
        return con  # type: ignore[no-any-return]
    if _SPILL is None or not Path(_SPILL.name).is_dir():
        _SPILL = tempfile.TemporaryDirectory(prefix="arsenale-pit-")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET temp_directory = {_literal(_SPILL.name)}")
    con.execute("SET preserve_insertion_order = false")  # results are put in row order explicitly
    _LOCAL.con, _LOCAL.pid = con, os.getpid()
    return con


@contextmanager
def _connection(memory_limit: str | None, threads: int | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """The thread's database for one retrieval: its settings for this call only, and every relation the
    call registered dropped afterwards, so nothing leaks from one call into the next."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InvalidInput(f"threads must be a positive integer; got {threads!r}", field="threads")
    con = _cached_connection()
    _LOCAL.registered, _LOCAL.views = [], []
    try:
        if threads is not None:
            con.execute(f"SET threads = {threads}")
        if memory_limit is not None:
            try:
                con.execute(f"SET memory_limit = {_literal(str(memory_limit))}")
            except duckdb.Error as exc:
                raise InvalidInput(f"memory_limit {memory_limit!r} is not a size like '2GB': {exc}",
                                   field="memory_limit") from exc
        yield con
    finally:
        for name in _LOCAL.registered:
            con.unregister(name)
        for name in _LOCAL.views:
            con.execute(f"DROP VIEW IF EXISTS {name}")
        if threads is not None:
            con.execute("RESET threads")
        if memory_limit is not None:
            con.execute("RESET memory_limit")


def _register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Expose an Arrow table to this call's queries (and only this call's: `_connection` unregisters it)."""
    con.register(name, table)
    _LOCAL.registered.append(name)


def _register_source(con: duckdb.DuckDBPyConnection, name: str, request: ViewRequest) -> None:
    """Expose the source as relation `name`, with its row order as column `_SEQ`. The row order is the last
    tie-break, so it is numbered here rather than left to how the database parallelises the scan."""
    source: Any = request.source
    field = f"{request.view.name}.source"
    if isinstance(source, pd.DataFrame):
        try:
            source = pa.Table.from_pandas(source, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise InvalidInput(f"the source of view {request.view.name!r} cannot be read: {exc}", field=field) from exc
    if isinstance(source, pa.Table):
        needed = [c for c in _needed_columns(request) if c in source.column_names]
        seq = pa.array(np.arange(source.num_rows, dtype=np.int64))
        _register(con, name, source.select(needed).append_column(_SEQ, seq))
        return
    listing = ", ".join(_literal(f) for f in _parquet_files(source, field))
    try:
        _LOCAL.views.append(name)
        con.execute(f"CREATE VIEW {name} AS SELECT *, file_index::BIGINT * {_FILE_ROWS} + file_row_number "
                    f"AS {_SEQ} FROM read_parquet([{listing}], union_by_name = true)")
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot read the Parquet source of view {request.view.name!r}: {exc}",
                           field=field) from exc


def _parquet_files(source: Any, field: str) -> list[str]:
    """A file, a folder (its *.parquet files, recursively) or a glob; a list of those. Sorted, so that the
    row order, the last tie-break, is the same on every call."""
    items = [source] if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(items, (list, tuple)) or not items:
        raise InvalidInput(f"source must be an Arrow table or Parquet path(s); got {type(source).__name__}",
                           field=field)
    files: list[str] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise InvalidInput(f"source paths must be strings; got {type(item).__name__}", field=field)
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*.parquet"))
        elif path.is_file():
            found = [str(path)]
        else:
            found = sorted(glob.glob(str(path), recursive=True))
        if not found:
            raise InvalidInput(f"no Parquet file at {str(path)!r}", field=field)
        files.extend(found)
    return files


def _needed_columns(request: ViewRequest) -> list[str]:
    """The source columns this request reads; only these are scanned, and each must exist."""
    view = request.view
    columns = [*view.join_keys, view.timestamp, *([view.created_timestamp] if view.created_timestamp else [])]
    for name in request.features:
        column = view.feature(name).source_column
        if column is not None and column not in columns:
            columns.append(column)
    return columns


def _source_types(con: duckdb.DuckDBPyConnection, relation: str, request: ViewRequest) -> dict[str, str]:
    """Column → DuckDB type, read from the schema only (Parquet footers), before any data is scanned."""
    types = {str(r[0]): str(r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    for column in _needed_columns(request):
        if column not in types:
            raise InvalidInput(f"the source of view {request.view.name!r} has no column {column!r}",
                               field=f"{request.view.name}.{column}")
    return types


def _key_type(key: str, entity_type: str, source_type: str, view: str) -> str:
    """The type both sides of a join key are compared as: any integers join, any numbers join, any strings
    join; a string never silently equals a number."""
    kinds = {_kind(entity_type), _kind(source_type)}
    if kinds == {"integer"}:
        return "HUGEINT" if {entity_type, source_type} & _WIDE_INTEGER_TYPES else "BIGINT"
    if kinds <= {"integer", "float"}:
        return "DOUBLE"
    if kinds == {"string"}:
        return "VARCHAR"
    if entity_type == source_type:
        return entity_type
    raise InvalidInput(f"join key {key!r} is {entity_type} in entity_df but {source_type} in the source of view "
                       f"{view!r}", field=f"entity_df.{key}")


def _kind(dtype: str) -> str:
    """The family a DuckDB type belongs to, for deciding which key types may be compared."""
    if dtype in _INTEGER_TYPES:
        return "integer"
    if dtype in ("FLOAT", "DOUBLE") or dtype.startswith("DECIMAL"):
        return "float"
    if dtype == "VARCHAR" or dtype.startswith("ENUM"):
        return "string"
    return dtype


# ------------------------------------------------------------------------------------------ the queries


@dataclass(frozen=True)
class _Plan:
    """One view request turned into SQL pieces: the source's rows as `__k0.. (keys), __ts, __cr (created),
    __seq (row order)` plus inputs `__c0..`, and the entity side's keys cast to the same types."""

    request: ViewRequest
    relation: str
    columns: tuple[str, ...]  # SELECT items for keys, __ts, __cr, __seq
    where: tuple[str, ...]  # rows no entity row can see: null keys or time, later than every entity row
    first_ts: int | None  # the earliest entity time
    keys: tuple[str, ...]  # per join key, `CAST(__eN AS type)` for the entity side
    inputs: dict[str, str]  # source column → internal name __cN
    input_types: dict[str, str]

    def events(self, features: list[tuple[int, Feature]], lookback: int | None) -> str:
        """The source rows these features read, with only their inputs (fewer bytes to sort), skipping
        events older than `lookback` microseconds before the earliest entity row."""
        used = dict.fromkeys(self.inputs[c] for _, f in features if (c := f.source_column) is not None)
        select = [*self.columns, *(f"{_quote(c)} AS {a}" for c, a in self.inputs.items() if a in used)]
        where = list(self.where)
        if lookback is not None and self.first_ts is not None:
            where.append(f"__ts >= {self.first_ts - lookback}")
        return f"SELECT * FROM (SELECT {', '.join(select)} FROM {self.relation}) WHERE {' AND '.join(where)}"


def _retrieve_view(con: duckdb.DuckDBPyConnection, index: int, request: ViewRequest,
                   entities: _Entities) -> dict[str, pa.ChunkedArray]:
    """One view's features, in entity-row order: plain columns and aggregations need different queries."""
    plan = _plan(con, index, request, entities)
    features = [request.view.feature(n) for n in request.features]
    plain = [(i, f) for i, f in enumerate(features) if f.aggregation is None]
    windowed = [(i, f) for i, f in enumerate(features) if f.aggregation is not None]
    found: dict[int, pa.ChunkedArray] = {}
    if plain:
        found.update(_run(con, _latest_sql(plan, plain), [i for i, _ in plain], entities.table.num_rows))
    if windowed:
        found.update(_run(con, _windows_sql(plan, windowed), [i for i, _ in windowed], entities.table.num_rows))
    return {request.columns[i]: found[i] for i in range(len(features))}


def _plan(con: duckdb.DuckDBPyConnection, index: int, request: ViewRequest, entities: _Entities) -> _Plan:
    """Register the source and check it against the request (columns, key and time types) before any scan."""
    view = request.view
    relation = f"__source{index}"
    _register_source(con, relation, request)
    types = _source_types(con, relation, request)
    entity_types = {str(r[0]): str(r[1]) for r in con.sql("DESCRIBE SELECT * FROM __entities").fetchall()}
    key_types = [_key_type(k, entity_types[entities.keys[k]], types[k], view.name) for k in view.join_keys]
    ts = _micros_sql(view.timestamp, types[view.timestamp], con, relation, f"{view.name}.{view.timestamp}")
    created = "0"
    if view.created_timestamp:
        micros = _micros_sql(view.created_timestamp, types[view.created_timestamp], con, relation,
                             f"{view.name}.{view.created_timestamp}")
        created = f"coalesce({micros}, {_MIN_BIGINT})"  # an unknown creation time loses every tie
    inputs: dict[str, str] = {}
    for name in request.features:
        column = view.feature(name).source_column
        if column is not None and column not in inputs:
            inputs[column] = f"__c{len(inputs)}"
    select = [f"CAST({_quote(k)} AS {t}) AS __k{i}" for i, (k, t) in enumerate(zip(view.join_keys, key_types))]
    select += [f"{ts} AS __ts", f"{created} AS __cr", f"{_SEQ} AS __seq"]
    where = ["__ts IS NOT NULL", *(f"__k{i} IS NOT NULL" for i in range(len(key_types)))]
    if entities.bounds is not None:
        where.append(f"__ts <= {entities.bounds[1]}")
    keys = tuple(f"CAST({entities.keys[k]} AS {t})" for k, t in zip(view.join_keys, key_types))
    return _Plan(request, relation, tuple(select), tuple(where), entities.bounds[0] if entities.bounds else None,
                 keys, inputs, {c: types[c] for c in inputs})


def _latest_sql(plan: _Plan, features: list[tuple[int, Feature]]) -> str:
    """Plain columns: the latest event at or before t by (event time, created time, source row), via ASOF.
    The entity side's order key is (t, +inf, +inf), so every event at exactly t is eligible."""
    n = len(plan.keys)
    entity_keys = ", ".join(f"{k} AS __k{i}" for i, k in enumerate(plan.keys))
    on = " AND ".join([*(f"e.__k{i} = s.__k{i}" for i in range(n)), "e.__o >= s.__o"])
    ttl = plan.request.view.ttl_seconds
    fresh = "" if ttl is None else f"s.__ts >= e.__ts - {_micros(ttl)}"
    values = []
    for i, feature in features:
        value = f"s.{plan.inputs[str(feature.column)]}"
        values.append(f"{value if not fresh else f'CASE WHEN {fresh} THEN {value} END'} AS __f{i}")
    lookback = None if ttl is None else _micros(ttl)
    return (f"WITH s AS (SELECT *, struct_pack(t := __ts, c := __cr, q := __seq) AS __o "
            f"FROM ({plan.events(features, lookback)})), "
            f"e AS (SELECT __row, __ts, {entity_keys}, struct_pack(t := __ts, c := {_MAX_BIGINT}, "
            f"q := {_MAX_BIGINT}) AS __o FROM __entities) "
            f"SELECT e.__row, {', '.join(values)} FROM e ASOF LEFT JOIN s ON {on}")


def _windows_sql(plan: _Plan, features: list[tuple[int, Feature]]) -> str:
    """Aggregations: entity rows join the event stream (as rows without values), and each aggregate runs
    over a RANGE frame of (t - w, t] in microseconds, i.e. `w - 1 PRECEDING` to the current row and its
    peers (events at exactly t). Entity rows carry null inputs, so only `count(*)` needs to exclude them."""
    keys = ", ".join(f"__k{i}" for i in range(len(plan.keys)))
    windows: dict[int, str] = {}
    values = []
    for i, feature in features:
        assert feature.aggregation is not None
        span = max(_micros(feature.aggregation.window_seconds), 1)
        window = windows.setdefault(span, f"__w{len(windows)}")
        only_events = "NOT __entity" if feature.aggregation.column is None else None  # entity rows hold no event
        values.append(f"{_aggregate_sql(plan, feature, over=window, where=only_events)} AS __f{i}")
    used = [a for c, a in plan.inputs.items() if any(f.source_column == c for _, f in features)]
    events = plan.events(features, max(windows))
    union = (f"SELECT {keys}, __ts, false AS __entity, NULL::BIGINT AS __row{''.join(', ' + a for a in used)} "
             f"FROM ({events}) UNION ALL SELECT {', '.join(plan.keys)}, __ts, true, __row"
             f"{', NULL' * len(used)} FROM __entities")
    frames = ", ".join(f"{w} AS (PARTITION BY {keys} ORDER BY __ts RANGE BETWEEN {span - 1} PRECEDING AND "
                       f"CURRENT ROW)" for span, w in windows.items())
    return f"SELECT __row, {', '.join(values)} FROM ({union}) WINDOW {frames} QUALIFY __entity"


def _aggregate_sql(plan: _Plan, feature: Feature, *, over: str = "", where: str | None = None) -> str:
    """One aggregate, as a window function (`over`) or a grouped one (`where` filters its rows). Integer sums
    stay integers (DuckDB would widen them to a 128-bit type pandas cannot hold)."""
    aggregation = feature.aggregation
    assert aggregation is not None
    tail = (f" FILTER (WHERE {where})" if where else "") + (f" OVER {over}" if over else "")
    if aggregation.column is None:
        return f"count(*){tail}"
    value = plan.inputs[aggregation.column]
    dtype = plan.input_types[aggregation.column]
    if aggregation.function in ("count", "min", "max"):
        return f"{aggregation.function}({value}){tail}"
    kind = "integer" if dtype == "BOOLEAN" else _kind(dtype)
    if kind not in ("integer", "float"):
        raise InvalidInput(f"feature {feature.name!r} of view {plan.request.view.name!r}: {aggregation.function} "
                           f"needs a numeric column; {aggregation.column!r} is {dtype}",
                           field=f"{plan.request.view.name}.{aggregation.column}")
    if aggregation.function == "avg":
        return f"avg(CAST({value} AS DOUBLE)){tail}"
    result = "BIGINT" if kind == "integer" else "DOUBLE"
    return f"CAST(sum(CAST({value} AS {result})){tail} AS {result})"


def _run(con: duckdb.DuckDBPyConnection, sql: str, indices: list[int], n_rows: int) -> dict[int, pa.ChunkedArray]:
    """Run one view query and put its columns back in entity-row order (rows come back in any order)."""
    table = con.sql(sql).to_arrow_table()
    rows = table.column("__row").to_numpy()
    if len(rows) != n_rows:  # an invariant of the queries: exactly one result per entity row
        raise RuntimeError(f"point-in-time query returned {len(rows)} rows for {n_rows} entity rows")
    order = np.empty(n_rows, dtype=np.int64)
    order[rows] = np.arange(n_rows, dtype=np.int64)
    table = table.take(pa.array(order))
    return {i: table.column(f"__f{i}") for i in indices}


# -------------------------------------------------------------------------------------------- results


def _attach(frame: pd.DataFrame, columns: dict[str, pa.ChunkedArray]) -> pd.DataFrame:
    """The caller's frame, untouched, with the feature columns appended (positionally: any index works)."""
    if not columns:
        return frame.copy()
    features = pa.table(columns).to_pandas()
    result = pd.concat([frame.reset_index(drop=True), features], axis=1)
    result.index = frame.index
    return result


def _apply_on_demand(result: pd.DataFrame, requests: list[ViewRequest],
                     on_demand: list[OnDemandFeature]) -> pd.DataFrame:
    """Each on-demand function sees exactly its inputs, named by their bare feature names."""
    produced = _produced(requests)
    for feature in on_demand:
        inputs = {}
        for ref in feature.input_refs():
            column = ref.feature if ref.view is None else produced[(ref.view, ref.feature)]
            inputs[ref.feature] = result[column].array
        values = feature(pd.DataFrame(inputs, index=result.index))
        result[feature.name] = _on_demand_values(feature, values, len(result))
    return result


def _on_demand_values(feature: OnDemandFeature, values: Any, n_rows: int) -> Any:
    """The function's result as a column, placed by position; anything but one value per row is refused."""
    if isinstance(values, pd.DataFrame) and values.shape[1] == 1:
        values = values.iloc[:, 0]
    if np.ndim(values) != 1 or len(values) != n_rows:
        shape = getattr(values, "shape", type(values).__name__)
        raise InvalidInput(f"on-demand feature {feature.name!r} must return one value per row ({n_rows}); got "
                           f"{shape}", field=f"on_demand.{feature.name}")
    return values.array if isinstance(values, pd.Series) else np.asarray(values)


# -------------------------------------------------------------------------------------------------- SQL


def _micros(seconds: float) -> int:
    return int(round(seconds * 1_000_000))


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
