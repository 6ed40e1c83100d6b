"""The online feature store: the latest feature row of every entity, looked up by key while serving.

    store = open_online_store("sqlite:///.arsenale/online.db")      # or "redis://host:6379/0"
    store.write("txn_stats@3", ["customer_id"], frame, columns=["amount", "amount_7d"], watermark=until)
    store.read("txn_stats@3", ["customer_id"], [(42,), (7,)])         # [(event_time, {...}), (None, None)]

One table holds one version of one feature view. Writes upsert by entity key and keep a row only when its event
time is at least the stored one, so replaying an older batch never regresses a value. Every batch is one atomic
transaction, and the watermark (the time the table is materialised up to) commits with the last batch, so a
reader sees the old watermark or the new one together with all its rows. Reads are on the serving hot path: a
request of any number of keys is one SQL statement or one Redis command.

Layouts (both keep values as a compact JSON array in the table's column order, so a read is one lookup per key
and one `json.loads` per request; timestamps are tagged `{"$t": µs}` and dates `{"$d": "YYYY-MM-DD"}`):

    SQLite  online_rows(t, k, ts, v) WITHOUT ROWID, primary key (t, k): every feature table in one fixed
            schema, the table name a bound parameter (no SQL is ever built from a name);
            online_tables(t, schema, watermark): keys and columns as JSON, watermark in µs.
    Redis   ars:ft:{table}:<key>      string `[ts_µs, v1, v2, …]`, one per entity
            ars:ft:{table}:#schema    string `[[keys…], [columns…]]`, fetched in the same MGET as the rows
            ars:ft:{table}:#meta      hash: watermark (µs), rows (count of entities)
            ars:ft:tables             set of table names
            The braces are a Redis Cluster hash tag: a table's keys share a slot, so a batch's script may
            touch them all. The newer-wins rule runs in a Lua script, one call per batch.

Keys are encoded canonically (`encode_key`): 42, numpy.int64(42) and 42.0 are the same key, "42" is another.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc

from arsenale.errors import ArsenaleError, BackendUnavailable, InvalidInput, NotFound

if TYPE_CHECKING:
    import redis

__all__ = ["OnlineStore", "RedisOnlineStore", "SQLiteOnlineStore", "encode_key", "open_online_store"]

TS_COLUMN = "__ts"
_TABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,199}")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True)


class OnlineStore(Protocol):
    """Latest feature values per entity key, per feature table; one implementation per backend."""

    uri: str

    def write(self, table: str, keys: list[str], frame: pa.Table, *, columns: list[str],
              watermark: datetime | None = None, batch_rows: int = 50_000) -> int: ...

    def read(self, table: str, keys: list[str], entity_keys: Sequence[Any],
             columns: Sequence[str] | None = None) -> list[tuple[datetime | None, dict[str, Any] | None]]: ...

    def watermark(self, table: str) -> datetime | None: ...

    def stats(self, table: str) -> dict[str, Any]: ...

    def drop(self, table: str) -> None: ...

    def tables(self) -> list[str]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def open_online_store(uri: str) -> OnlineStore:
    """The store a URI names: `sqlite:///path/online.db` (embedded) or `redis://host:port[/db]` (`rediss://`)."""
    if not isinstance(uri, str):
        raise InvalidInput(f"the online store URI must be a string; got {uri!r}", field="online_store")
    if uri.startswith("sqlite:///"):
        return SQLiteOnlineStore(uri)
    if uri.startswith(("redis://", "rediss://")):
        return RedisOnlineStore(uri)
    raise InvalidInput(f"unsupported online store URI {_redact(uri)!r}: use sqlite:///path/online.db or "
                       "redis://host:port[/db]", field="online_store")


# ---------------------------------------------------------------------------------------------------- keys


def encode_key(values: Any) -> str:
    """The canonical text of one entity key (a sequence of its parts, or one bare value).

    Integers (Python or numpy) and integral floats print as integers, so the key that a float column produced
    finds the row an integer column wrote; strings are quoted, so "42" is not 42. Parts are joined with ",",
    which a quoted string cannot end early (its quotes and backslashes are escaped).
    """
    if type(values) is tuple or type(values) is list:
        if not values:
            raise InvalidInput("an entity key needs at least one part", field="entity_keys")
        if len(values) == 1:
            return _encode_part(values[0])
        return ",".join([_encode_part(v) for v in values])
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        return _encode_part(values)
    return encode_key(list(values))


def _encode_part(value: Any) -> str:
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str:
        return _quote(value)
    if value is None:
        raise InvalidInput("an entity key may not be null", field="entity_keys")
    if isinstance(value, bool) or getattr(value, "dtype", None) is not None and value.dtype.kind == "b":
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInput(f"an entity key may not be NaN or infinite; got {value!r}", field="entity_keys")
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, str):
        return _quote(str(value))
    if isinstance(value, datetime):
        return f"t{_micros(value)}"
    if isinstance(value, date):
        return f"d{value.isoformat()}"
    if type(value).__name__ == "datetime64":  # numpy's, without importing numpy here
        if value != value:
            raise InvalidInput("an entity key may not be NaT", field="entity_keys")
        return f"t{int(value.astype('datetime64[us]').astype('int64'))}"
    raise InvalidInput(f"an entity key part must be an int, str, bool, float, date or datetime; got "
                       f"{type(value).__name__} {value!r}", field="entity_keys")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _micros(moment: datetime) -> int:
    """µs since the epoch; a naive datetime is taken as UTC, as everywhere in the feature store."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _ONE_US


def _check_table(table: Any) -> str:
    if not isinstance(table, str) or not _TABLE.fullmatch(table) or ".." in table:
        raise InvalidInput(f"an online table name is 1-200 letters, digits, '_', '.', '-' or '@', starting with a "
                           f"letter or digit; got {table!r}", field="table")
    return table


def _check_names(names: Any, *, field: str) -> list[str]:
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise InvalidInput(f"{field} must be a non-empty list of column names; got {names!r}", field=field)
    out = list(names)
    if not all(isinstance(n, str) and n for n in out) or len(set(out)) != len(out) or TS_COLUMN in out:
        raise InvalidInput(f"{field} must be distinct non-empty names other than {TS_COLUMN!r}; got {out!r}",
                           field=field)
    return out


# --------------------------------------------------------------------------------------------- encoding


class _Schema:
    """A table's keys and columns, as stored (the JSON text is compared byte for byte) and as read."""

    __slots__ = ("columns", "index", "keys", "text")

    def __init__(self, text: str) -> None:
        keys, columns = json.loads(text)
        self.text = text
        self.keys: list[str] = keys
        self.columns: list[str] = columns
        self.index = {name: i for i, name in enumerate(columns)}

    @staticmethod
    def dump(keys: list[str], columns: list[str]) -> str:
        return json.dumps([keys, columns], separators=(",", ":"), ensure_ascii=False)


class _Batch:
    """One batch, encoded: key texts, event times in µs and the JSON value arrays, in frame order."""

    __slots__ = ("keys", "micros", "values")

    def __init__(self, keys: list[str], micros: list[int], values: list[str]) -> None:
        self.keys, self.micros, self.values = keys, micros, values


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return pa.chunked_array([chunk.dictionary_decode() for chunk in column.chunks],
                                type=column.type.value_type)
    return column


def _check_frame(frame: Any, keys: list[str], columns: list[str]) -> None:
    """Everything that can be checked before the first batch, so that bad input writes nothing."""
    if not isinstance(frame, pa.Table):
        raise InvalidInput(f"frame must be a pyarrow.Table; got {type(frame).__name__}", field="frame")
    if set(keys) & set(columns):
        raise InvalidInput(f"keys and columns overlap: {sorted(set(keys) & set(columns))}", field="columns")
    missing = [c for c in (*keys, TS_COLUMN, *columns) if c not in frame.column_names]
    if missing:
        raise InvalidInput(f"frame lacks the column(s) {missing}", field="frame")
    ts = frame.column(TS_COLUMN)
    if not pa.types.is_timestamp(ts.type):
        raise InvalidInput(f"{TS_COLUMN} must be a timestamp column; got {ts.type}", field=TS_COLUMN)
    if ts.null_count:
        raise InvalidInput(f"{TS_COLUMN} has {ts.null_count} null event time(s)", field=TS_COLUMN)
    for name in keys:
        col = _plain(frame.column(name))
        kind = col.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
                or _is_text(kind) or pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
            raise InvalidInput(f"key column {name!r} has unsupported type {kind}", field="keys")
        if col.null_count:
            raise InvalidInput(f"key column {name!r} has {col.null_count} null value(s)", field="keys")
        if pa.types.is_floating(kind) and len(col) and not pc.all(pc.is_finite(col)).as_py():
            raise InvalidInput(f"key column {name!r} has NaN or infinite values", field="keys")
    for name in columns:
        kind = _plain(frame.column(name)).type
        if not _value_type_ok(kind):
            raise InvalidInput(f"feature column {name!r} has unsupported type {kind} (use int, float, bool, "
                               "str, timestamp, date or lists of them)", field="columns")


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _value_type_ok(kind: pa.DataType) -> bool:
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _value_type_ok(kind.value_type)
    return (pa.types.is_null(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind) or _is_text(kind) or pa.types.is_timestamp(kind)
            or pa.types.is_date(kind) or pa.types.is_decimal(kind))


def _key_texts(batch: pa.Table, keys: list[str]) -> pa.ChunkedArray:
    """`encode_key` of every row, vectorised for the common types (the same text, part for part)."""
    parts = []
    for name in keys:
        col = _plain(batch.column(name))
        kind = col.type
        if pa.types.is_integer(kind):
            parts.append(pc.cast(col, pa.string()))
        elif _is_text(kind):
            escaped = pc.replace_substring(pc.replace_substring(col.cast(pa.string()), "\\", "\\\\"), '"', '\\"')
            parts.append(pc.binary_join_element_wise('"', escaped, '"', ""))
        elif pa.types.is_boolean(kind):
            parts.append(pc.if_else(col, "true", "false"))
        elif pa.types.is_timestamp(kind):
            parts.append(pc.binary_join_element_wise("t", pc.cast(_as_micros(col), pa.string()), ""))
        else:  # floats and dates: rare as keys; take the one definition
            parts.append(pa.chunked_array([pa.array([_encode_part(v) for v in col.to_pylist()], pa.string())]))
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, ",")


def _as_micros(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """µs since the epoch (UTC) of a timestamp column of any unit; a naive one is taken as UTC."""
    return pc.cast(pc.cast(col, pa.timestamp("us", tz=col.type.tz), safe=False), pa.int64())


def _value_texts(batch: pa.Table, columns: list[str]) -> pa.ChunkedArray:
    """Each row's values as JSON array items `v1,v2,…` (without brackets), built column-wise by Arrow."""
    parts = [_json_column(_plain(batch.column(name)), name) for name in columns]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, ",")


def _json_column(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    kind = col.type
    if pa.types.is_null(kind):
        out = pc.cast(col, pa.string())
    elif pa.types.is_integer(kind):
        out = pc.cast(col, pa.string())
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        col = pc.cast(col, pa.float64())
        text = pc.cast(pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col), pa.string())
        # Arrow prints 1.0 as "1"; JSON would read that back as an int.
        integral = pc.match_substring_regex(text, r"^-?[0-9]+$")
        text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
        out = pc.replace_substring(text, "inf", "Infinity")
    elif pa.types.is_boolean(kind):
        out = pc.if_else(col, "true", "false")
    elif _is_text(kind):
        col = col.cast(pa.string())
        if pc.any(pc.match_substring_regex(col, r"[\x00-\x1f]")).as_py():
            return _json_fallback(col, name)  # control characters need \u escapes: rare, so plain Python
        escaped = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
        out = pc.binary_join_element_wise('"', escaped, '"', "")
    elif pa.types.is_timestamp(kind):
        out = pc.binary_join_element_wise('{"$t":', pc.cast(_as_micros(col), pa.string()), "}", "")
    else:  # dates, lists
        return _json_fallback(col, name)
    return pc.fill_null(out, "null")


def _json_fallback(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    try:
        texts = [_json_value(v) for v in col.to_pylist()]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"feature column {name!r}: {exc}", field="columns") from None
    return pa.chunked_array([pa.array(texts, pa.string())])


def _json_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "null" if value != value else _JSON.encode(value)
    if isinstance(value, datetime):
        return f'{{"$t":{_micros(value)}}}'
    if isinstance(value, date):
        return f'{{"$d":"{value.isoformat()}"}}'
    if isinstance(value, (list, tuple)):
        return "[" + ",".join([_json_value(v) for v in value]) + "]"
    if isinstance(value, (bool, int, str)):
        return _JSON.encode(value)
    if isinstance(value, numbers.Real):
        return _json_value(float(value))
    raise TypeError(f"unsupported value {value!r}")


def _batches(frame: pa.Table, keys: list[str], columns: list[str], batch_rows: int,
             with_ts: bool) -> Iterator[_Batch]:
    """Encode lazily, one batch at a time, so memory stays bounded by `batch_rows`.

    With `with_ts` the event time leads the value array (`[ts,v1,…]`, the Redis layout), else `[v1,…]`.
    """
    total = frame.num_rows
    for start in range(0, total, batch_rows) if total else (0,):
        part = frame.slice(start, batch_rows)
        micros = _as_micros(part.column(TS_COLUMN))
        body = _value_texts(part, columns)
        if with_ts:
            values = pc.binary_join_element_wise("[", pc.cast(micros, pa.string()), ",", body, "]", "")
        else:
            values = pc.binary_join_element_wise("[", body, "]", "")
        yield _Batch(_key_texts(part, keys).to_pylist(), micros.to_pylist(), values.to_pylist())


def _object_hook(obj: dict[str, Any]) -> Any:
    if "$t" in obj:
        return _EPOCH + timedelta(microseconds=obj["$t"])
    if "$d" in obj:
        return date.fromisoformat(obj["$d"])
    return obj


_decode = json.JSONDecoder(object_hook=_object_hook).decode


def _watermark_micros(watermark: Any) -> int | None:
    if watermark is None:
        return None
    if not isinstance(watermark, datetime):
        raise InvalidInput(f"watermark must be a datetime; got {watermark!r}", field="watermark")
    return _micros(watermark)


def _when(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _entity_texts(entity_keys: Sequence[Any], width: int) -> list[str]:
    texts = []
    for entity in entity_keys:
        if type(entity) is tuple or type(entity) is list:
            if len(entity) != width:
                raise InvalidInput(f"entity key {entity!r} has {len(entity)} part(s); the table's key has {width}",
                                   field="entity_keys")
            texts.append(_encode_part(entity[0]) if width == 1 else ",".join([_encode_part(v) for v in entity]))
        elif width == 1 and (isinstance(entity, (str, bytes)) or not isinstance(entity, Sequence)):
            texts.append(_encode_part(entity))  # a bare value stands for a one-part key
        elif isinstance(entity, Sequence) and not isinstance(entity, (str, bytes)) and len(entity) == width:
            texts.append(encode_key(list(entity)))
        else:
            raise InvalidInput(f"entity key {entity!r} must be a tuple of {width} part(s)", field="entity_keys")
    return texts


def _pick(schema: _Schema, table: str, keys: Sequence[str],
          columns: Sequence[str] | None) -> list[tuple[str, int]] | None:
    """Check the caller's key names against the table's; the (column, position) pairs to return."""
    if list(keys) != schema.keys:
        raise InvalidInput(f"online table {table!r} is keyed by {schema.keys}; got {list(keys)}", field="keys")
    if columns is None:
        return None
    unknown = [c for c in columns if c not in schema.index]
    if unknown or isinstance(columns, str):
        raise InvalidInput(f"online table {table!r} has no column(s) {unknown or columns!r}; it has "
                           f"{schema.columns}", field="columns")
    return [(c, schema.index[c]) for c in columns]


def _row(values: list[Any], names: list[str], picks: list[tuple[str, int]] | None) -> dict[str, Any]:
    if picks is None:
        return dict(zip(names, values))
    return {name: values[i] for name, i in picks}


def _schema_mismatch(table: str, stored: str, wanted: str) -> InvalidInput:
    keys, columns = json.loads(stored)
    new_keys, new_columns = json.loads(wanted)
    return InvalidInput(f"online table {table!r} has keys {keys} and columns {columns}; this write has keys "
                        f"{new_keys} and columns {new_columns} (a table's columns never change: write a new "
                        "version)", field="columns")


def _not_found(table: str) -> NotFound:
    return NotFound(f"online table {table!r} does not exist (never materialised, or dropped)", field="table")


# ---------------------------------------------------------------------------------------------- SQLite

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_rows (
    t TEXT NOT NULL, k TEXT NOT NULL, ts INTEGER NOT NULL, v TEXT NOT NULL, PRIMARY KEY (t, k)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_tables (
    t TEXT NOT NULL PRIMARY KEY, schema TEXT NOT NULL, watermark INTEGER
) WITHOUT ROWID;
"""
_UPSERT = ("INSERT INTO online_rows (t, k, ts, v) VALUES (?, ?, ?, ?) ON CONFLICT (t, k) DO UPDATE "
           "SET ts = excluded.ts, v = excluded.v WHERE excluded.ts >= online_rows.ts")


class SQLiteOnlineStore:
    """The embedded online store: one SQLite file in WAL mode, shared by every process on the machine.

    Each thread gets its own connection (SQLite runs queries without the GIL, so serving threads read in
    parallel); writers take the write lock up front (`BEGIN IMMEDIATE`) and wait up to a minute for it.
    """

    def __init__(self, uri: str) -> None:
        path = uri[len("sqlite:///"):]
        if not path or path.startswith(":memory:") or "?" in path:
            raise InvalidInput(f"the SQLite online store needs a file path: sqlite:///path/online.db; got {uri!r}",
                               field="online_store")
        self.uri = uri
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[sqlite3.Connection] = []
        self._schemas: dict[str, _Schema] = {}
        self._sql: dict[int, str] = {}
        self._max_vars = 0
        self._conn()  # a bad path fails here, not on the first request

    def __repr__(self) -> str:
        return f"SQLiteOnlineStore({self.uri!r})"

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            from arsenale.data.localdb import open_local_db

            try:
                conn = open_local_db(self.path, _SQLITE_SCHEMA, check_same_thread=False)
            except (OSError, sqlite3.Error) as exc:
                raise BackendUnavailable(f"cannot open the online store at {self.uri}: {exc}") from exc
            self._max_vars = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        return conn

    def _failed(self, exc: sqlite3.Error) -> ArsenaleError:
        return BackendUnavailable(f"the online store at {self.uri} failed: {exc}")

    def _schema(self, text: str) -> _Schema:
        schema = self._schemas.get(text)
        if schema is None:
            schema = self._schemas[text] = _Schema(text)
        return schema

    def write(self, table: str, keys: list[str], frame: pa.Table, *, columns: list[str],
              watermark: datetime | None = None, batch_rows: int = 50_000) -> int:
        """Upsert the frame's rows (newer or equal event time wins), one transaction per batch of rows."""
        _check_table(table)
        keys, columns = _check_names(keys, field="keys"), _check_names(columns, field="columns")
        if not isinstance(batch_rows, int) or batch_rows < 1:
            raise InvalidInput(f"batch_rows must be a positive integer; got {batch_rows!r}", field="batch_rows")
        _check_frame(frame, keys, columns)
        mark = _watermark_micros(watermark)
        wanted = _Schema.dump(keys, columns)
        conn = self._conn()
        last = max(0, (frame.num_rows - 1) // batch_rows)
        written = 0
        for number, batch in enumerate(_batches(frame, keys, columns, batch_rows, with_ts=False)):
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute("INSERT INTO online_tables (t, schema) VALUES (?, ?) ON CONFLICT (t) DO NOTHING",
                                 (table, wanted))
                    stored = conn.execute("SELECT schema FROM online_tables WHERE t = ?", (table,)).fetchone()[0]
                    if stored != wanted:
                        raise _schema_mismatch(table, stored, wanted)
                    cursor = conn.executemany(_UPSERT, zip(repeat(table), batch.keys, batch.micros, batch.values))
                    written += max(cursor.rowcount, 0)
                    if number == last and mark is not None:
                        conn.execute("UPDATE online_tables SET watermark = max(coalesce(watermark, ?1), ?1) "
                                     "WHERE t = ?2", (mark, table))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc
        return written

    def _read_sql(self, count: int) -> str:
        """The lookup statement for `count` keys (a power of two, padded by the caller: few distinct plans)."""
        sql = self._sql.get(count)
        if sql is None:
            marks = ",".join(["?"] * count)
            sql = self._sql[count] = (f"SELECT k, ts, v FROM online_rows WHERE t = ?1 AND k IN ({marks}) "
                                      "UNION ALL SELECT NULL, NULL, schema FROM online_tables WHERE t = ?1")
        return sql

    def read(self, table: str, keys: list[str], entity_keys: Sequence[Any],
             columns: Sequence[str] | None = None) -> list[tuple[datetime | None, dict[str, Any] | None]]:
        """The latest row of each entity, in request order; (None, None) for an entity never written.

        One statement per request (per ~32,000 distinct keys): the table's schema rides along in a UNION ALL,
        so there is no second query and no cache to go stale when a table is dropped and recreated.
        """
        _check_table(table)
        texts = _entity_texts(entity_keys, len(keys))
        if not texts:
            return []
        conn = self._conn()
        wanted = list(dict.fromkeys(texts))
        found: dict[str, tuple[int, str]] = {}
        schema_text = None
        try:
            for start in range(0, len(wanted), self._max_vars):
                chunk = wanted[start:start + self._max_vars]
                size = 1 << (len(chunk) - 1).bit_length()
                if size > self._max_vars:
                    size = len(chunk)
                params = [table, *chunk]
                params.extend(repeat(chunk[-1], size - len(chunk)))
                for k, ts, v in conn.execute(self._read_sql(size), params).fetchall():
                    if k is None:
                        schema_text = v
                    else:
                        found[k] = (ts, v)
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        if schema_text is None:
            raise _not_found(table)
        schema = self._schema(schema_text)
        picks = _pick(schema, table, keys, columns)
        names = schema.columns
        hits = [found.get(t) for t in texts]
        decoded = iter(_decode("[" + ",".join([h[1] for h in hits if h is not None]) + "]"))
        return [(None, None) if h is None else (_EPOCH + timedelta(microseconds=h[0]),
                                                _row(next(decoded), names, picks)) for h in hits]

    def watermark(self, table: str) -> datetime | None:
        """The time the table is materialised up to; None when never set (or the table does not exist)."""
        _check_table(table)
        try:
            row = self._conn().execute("SELECT watermark FROM online_tables WHERE t = ?", (table,)).fetchone()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return None if row is None else _when(row[0])

    def stats(self, table: str) -> dict[str, Any]:
        _check_table(table)
        try:
            row = self._conn().execute(
                "SELECT schema, watermark, (SELECT count(*) FROM online_rows WHERE t = ?1) FROM online_tables "
                "WHERE t = ?1", (table,)).fetchone()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        if row is None:
            raise _not_found(table)
        schema = self._schema(row[0])
        return {"rows": row[2], "watermark": _when(row[1]), "columns": list(schema.columns),
                "keys": list(schema.keys)}

    def drop(self, table: str) -> None:
        """Remove the table's rows, schema and watermark in one transaction; a missing table is no error."""
        _check_table(table)
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM online_rows WHERE t = ?", (table,))
                conn.execute("DELETE FROM online_tables WHERE t = ?", (table,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def tables(self) -> list[str]:
        try:
            return [r[0] for r in self._conn().execute("SELECT t FROM online_tables ORDER BY t").fetchall()]
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT 1 FROM online_tables LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"cannot reach the online store at {self.uri}: {exc}") from exc

    def close(self) -> None:
        """Close every thread's connection; the store reopens lazily if used again."""
        with self._lock:
            conns, self._open = self._open, []
            self._local = threading.local()
        for conn in conns:
            conn.close()


# ----------------------------------------------------------------------------------------------- Redis

# KEYS: #meta, #schema, row keys…; ARGV: schema JSON, watermark µs or "", row values `[ts,…]`…
# The schema is checked before anything is written: a script that fails mid-way keeps its earlier writes.
_REDIS_WRITE = """
local schema = redis.call('GET', KEYS[2])
if not schema then
  redis.call('SET', KEYS[2], ARGV[1])
elseif schema ~= ARGV[1] then
  return redis.error_reply('ARSSCHEMA ' .. schema)
end
local written, added = 0, 0
for i = 3, #KEYS do
  local new = ARGV[i]
  local old = redis.call('GET', KEYS[i])
  if not old then
    redis.call('SET', KEYS[i], new)
    written = written + 1
    added = added + 1
  elseif tonumber(string.match(new, '^%[(%-?%d+)')) >= tonumber(string.match(old, '^%[(%-?%d+)')) then
    redis.call('SET', KEYS[i], new)
    written = written + 1
  end
end
if added > 0 then redis.call('HINCRBY', KEYS[1], 'rows', added) end
if ARGV[2] ~= '' then
  local mark = redis.call('HGET', KEYS[1], 'watermark')
  if not mark or tonumber(ARGV[2]) > tonumber(mark) then redis.call('HSET', KEYS[1], 'watermark', ARGV[2]) end
end
return written
"""
_TABLES_KEY = "ars:ft:tables"


def _prefix(table: str) -> str:
    return f"ars:ft:{{{table}}}:"


class RedisOnlineStore:
    """The scale-out online store: Redis (or anything speaking its protocol), one string per entity.

    The client connects lazily; an unreachable server surfaces as BackendUnavailable on first use, with the
    URI's password masked. Timeouts: 2 s to connect, 10 s per command, unless the URI sets its own
    (`?socket_timeout=…`).
    """

    def __init__(self, uri: str) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self.uri = _redact(uri)
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                uri, socket_connect_timeout=2.0, socket_timeout=10.0,
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2))
        except ValueError as exc:
            raise InvalidInput(f"bad online store URI {self.uri!r}: {exc}", field="online_store") from None
        self._script = self._client.register_script(_REDIS_WRITE)
        self._schemas: dict[bytes, _Schema] = {}
        self._error = redis.RedisError
        self._response_error = redis.ResponseError

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self.uri!r})"

    def _failed(self, exc: Exception) -> ArsenaleError:
        if isinstance(exc, self._response_error):
            return BackendUnavailable(f"the online store at {self.uri} refused a command: {exc}")
        return BackendUnavailable(f"cannot reach the online store at {self.uri}: {exc}")

    def _schema(self, text: bytes) -> _Schema:
        schema = self._schemas.get(text)
        if schema is None:
            schema = self._schemas[text] = _Schema(text.decode())
        return schema

    def write(self, table: str, keys: list[str], frame: pa.Table, *, columns: list[str],
              watermark: datetime | None = None, batch_rows: int = 50_000) -> int:
        """Upsert the frame's rows, one Lua script call (atomic) per batch; the watermark with the last."""
        _check_table(table)
        keys, columns = _check_names(keys, field="keys"), _check_names(columns, field="columns")
        if not isinstance(batch_rows, int) or batch_rows < 1:
            raise InvalidInput(f"batch_rows must be a positive integer; got {batch_rows!r}", field="batch_rows")
        _check_frame(frame, keys, columns)
        mark = _watermark_micros(watermark)
        wanted = _Schema.dump(keys, columns)
        prefix = _prefix(table)
        head = [prefix + "#meta", prefix + "#schema"]
        last = max(0, (frame.num_rows - 1) // batch_rows)
        written = 0
        try:
            self._client.sadd(_TABLES_KEY, table)
            for number, batch in enumerate(_batches(frame, keys, columns, batch_rows, with_ts=True)):
                args = [wanted, "" if number != last or mark is None else str(mark)]
                written += int(self._script(keys=[*head, *[prefix + k for k in batch.keys]],
                                            args=[*args, *batch.values]))
        except self._error as exc:
            message = str(exc)
            if isinstance(exc, self._response_error) and "ARSSCHEMA " in message:
                raise _schema_mismatch(table, message.split("ARSSCHEMA ", 1)[1], wanted) from None
            raise self._failed(exc) from exc
        return written

    def read(self, table: str, keys: list[str], entity_keys: Sequence[Any],
             columns: Sequence[str] | None = None) -> list[tuple[datetime | None, dict[str, Any] | None]]:
        """The latest row of each entity, in request order: one MGET fetching the schema and every row."""
        _check_table(table)
        texts = _entity_texts(entity_keys, len(keys))
        if not texts:
            return []
        prefix = _prefix(table)
        try:
            raw = self._client.mget([prefix + "#schema", *[prefix + t for t in texts]])
        except self._error as exc:
            raise self._failed(exc) from exc
        if raw[0] is None:
            raise _not_found(table)
        schema = self._schema(raw[0])
        picks = _pick(schema, table, keys, columns)
        names = schema.columns
        hits = raw[1:]
        decoded = iter(_decode("[" + b",".join([h for h in hits if h is not None]).decode() + "]"))
        out: list[tuple[datetime | None, dict[str, Any] | None]] = []
        for hit in hits:
            if hit is None:
                out.append((None, None))
            else:
                values = next(decoded)
                out.append((_EPOCH + timedelta(microseconds=values[0]), _row(values[1:], names, picks)))
        return out

    def watermark(self, table: str) -> datetime | None:
        _check_table(table)
        try:
            mark = self._client.hget(_prefix(table) + "#meta", "watermark")
        except self._error as exc:
            raise self._failed(exc) from exc
        return None if mark is None else _when(int(mark))

    def stats(self, table: str) -> dict[str, Any]:
        _check_table(table)
        prefix = _prefix(table)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.get(prefix + "#schema")
            pipe.hmget(prefix + "#meta", ["rows", "watermark"])
            text, (rows, mark) = pipe.execute()
        except self._error as exc:
            raise self._failed(exc) from exc
        if text is None:
            raise _not_found(table)
        schema = self._schema(text)
        return {"rows": int(rows or 0), "watermark": None if mark is None else _when(int(mark)),
                "columns": list(schema.columns), "keys": list(schema.keys)}

    def drop(self, table: str) -> None:
        """Delete the table's keys (found by SCAN, unlinked in chunks), then forget its name."""
        _check_table(table)
        prefix = _prefix(table)
        try:
            # The schema goes first, so that readers see "no such table" rather than a half-emptied one.
            self._client.unlink(prefix + "#schema")
            chunk: list[bytes] = []
            for key in self._client.scan_iter(match=prefix + "*", count=10_000):
                chunk.append(key)
                if len(chunk) >= 10_000:
                    self._client.unlink(*chunk)
                    chunk = []
            if chunk:
                self._client.unlink(*chunk)
            self._client.srem(_TABLES_KEY, table)
        except self._error as exc:
            raise self._failed(exc) from exc

    def tables(self) -> list[str]:
        """Names in the registry set whose schema exists (a write that failed before its first batch left
        only the name behind)."""
        try:
            names = sorted(n.decode() for n in self._client.smembers(_TABLES_KEY))
            if not names:
                return []
            schemas = self._client.mget([_prefix(n) + "#schema" for n in names])
        except self._error as exc:
            raise self._failed(exc) from exc
        return [n for n, s in zip(names, schemas) if s is not None]

    def ping(self) -> None:
        try:
            self._client.ping()
        except self._error as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        self._client.close()


def _redact(uri: str) -> str:
    """The URI with its password masked, for messages and `repr`."""
    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        user = parts.username or ""
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # unparsable: keep only what cannot hold a password
        scheme, _, rest = uri.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[-1]}" if "@" in rest else uri
