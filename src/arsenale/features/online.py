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

    SQLite  online_tables(id, name, schema, watermark): keys and columns as JSON, watermark in µs;
            online_rows(t, k, ts, v) WITHOUT ROWID, primary key (table id, key): every feature table in one
            fixed schema, the table name only ever a bound parameter (no SQL is built from a name).
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
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from arsenale.errors import InvalidInput, NotFound

__all__ = ["OnlineStore", "encode_key", "open_online_store"]

TS_COLUMN = "__ts"
_TABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,199}")
_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_US = timedelta(microseconds=1)
# Within ±2**32 s of the epoch (years 1833-2106) a float of seconds is within half a µs of the exact time, so
# `fromtimestamp(µs / 1e6)` gives the exact datetime, and twice as fast as epoch + timedelta (it is per row).
_FAST_US = 2**32 * 10**6
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
        from arsenale.features.online_sqlite import SQLiteOnlineStore

        return SQLiteOnlineStore(uri)
    if uri.startswith(("redis://", "rediss://")):
        from arsenale.features.online_redis import RedisOnlineStore

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
        moment = moment.replace(tzinfo=UTC)
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
        if pa.types.is_null(kind) and not len(col):
            continue  # an empty frame built from empty lists: nothing to encode
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
    if pa.types.is_null(kind) or pa.types.is_integer(kind):
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
        return _times([obj["$t"]])[0]
    if "$d" in obj:
        return date.fromisoformat(obj["$d"])
    return obj


_decode = json.JSONDecoder(object_hook=_object_hook).decode


def _check_write(table: str, keys: list[str], frame: pa.Table, columns: list[str], watermark: datetime | None,
                 batch_rows: int) -> tuple[list[str], list[str], int | None, str]:
    """Everything a write can check before its first batch, so that bad input writes nothing.

    Returns the key and column names as lists, the watermark in µs and the schema text to store.
    """
    _check_table(table)
    keys, columns = _check_names(keys, field="keys"), _check_names(columns, field="columns")
    if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or batch_rows < 1:
        raise InvalidInput(f"batch_rows must be a positive integer; got {batch_rows!r}", field="batch_rows")
    _check_frame(frame, keys, columns)
    return keys, columns, _watermark_micros(watermark), _Schema.dump(keys, columns)


def _watermark_micros(watermark: Any) -> int | None:
    if watermark is None:
        return None
    if not isinstance(watermark, datetime):
        raise InvalidInput(f"watermark must be a datetime; got {watermark!r}", field="watermark")
    return _micros(watermark)


def _when(micros: int | None) -> datetime | None:
    return None if micros is None else _times([micros])[0]


def _times(micros: list[int]) -> list[datetime]:
    """UTC datetimes of µs since the epoch, exactly (see _FAST_US)."""
    stamp, utc, epoch, delta, fast = datetime.fromtimestamp, _UTC, _EPOCH, timedelta, _FAST_US
    return [stamp(us / 1e6, utc) if -fast < us < fast else epoch + delta(microseconds=us) for us in micros]


def _entity_texts(entity_keys: Sequence[Any], width: int) -> list[str]:
    """`encode_key` of each requested entity; a bare value stands for a one-part key. On the hot path: the
    common one-part int or str key is encoded inline."""
    texts = []
    for entity in entity_keys:
        kind = type(entity)
        if width == 1 and kind is int:
            texts.append(str(entity))
        elif width == 1 and kind is str:
            texts.append(_quote(entity))
        elif kind is tuple or kind is list:
            if len(entity) != width:
                raise InvalidInput(f"entity key {entity!r} has {len(entity)} part(s); the table's key has {width}",
                                   field="entity_keys")
            texts.append(_encode_part(entity[0]) if width == 1 else ",".join([_encode_part(v) for v in entity]))
        elif width == 1 and (isinstance(entity, (str, bytes)) or not isinstance(entity, Sequence)):
            texts.append(_encode_part(entity))
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
    if isinstance(columns, str):
        raise InvalidInput(f"columns must be a list of names; got {columns!r}", field="columns")
    unknown = [c for c in columns if c not in schema.index]
    if unknown:
        raise InvalidInput(f"online table {table!r} has no column(s) {unknown}; it has {schema.columns}",
                           field="columns")
    return [(c, schema.index[c]) for c in columns]


def _assemble(hits: list[Any], times: list[datetime], values: list[list[Any]], names: list[str],
              picks: list[tuple[str, int]] | None) -> list[tuple[datetime | None, dict[str, Any] | None]]:
    """Pair event times with {column: value} rows, and put (None, None) where a hit is missing."""
    if picks is None:
        rows = list(map(dict, map(zip, repeat(names), values)))
    else:
        rows = [{name: row[i] for name, i in picks} for row in values]
    found: list[tuple[datetime | None, dict[str, Any] | None]] = list(zip(times, rows))
    if len(found) == len(hits):
        return found
    each = iter(found)
    return [(None, None) if hit is None else next(each) for hit in hits]


def _schema_mismatch(table: str, stored: str, wanted: str) -> InvalidInput:
    keys, columns = json.loads(stored)
    new_keys, new_columns = json.loads(wanted)
    return InvalidInput(f"online table {table!r} has keys {keys} and columns {columns}; this write has keys "
                        f"{new_keys} and columns {new_columns} (a table's columns never change: write a new "
                        "version)", field="columns")


def _not_found(table: str) -> NotFound:
    return NotFound(f"online table {table!r} does not exist (never materialised, or dropped)", field="table")


def _redact(uri: str) -> str:
    """The URI with its password masked (in the user info or a `password=` query), for messages and `repr`."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    location, query_sep, query = rest.partition("?")
    if "@" in location:  # the last "@" ends the user info, even if an unescaped password holds "/" or "@"
        user_info, host = location.rsplit("@", 1)
        location = f"{user_info.split(':', 1)[0]}:***@{host}" if ":" in user_info else location
    if query:
        query = "&".join("password=***" if item.lower().startswith("password=") else item
                         for item in query.split("&"))
    return f"{scheme}://{location}{query_sep}{query}"
