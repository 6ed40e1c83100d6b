"""The scale-out online store: Redis, one string per entity (see `arsenale.features.online`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from arsenale.errors import ArsenaleError, BackendUnavailable, InvalidInput
from arsenale.features.online import (
    _assemble,
    _batches,
    _check_table,
    _check_write,
    _decode,
    _entity_texts,
    _not_found,
    _pick,
    _redact,
    _Schema,
    _schema_mismatch,
    _times,
    _when,
)

__all__ = ["RedisOnlineStore"]

# KEYS: #meta, #schema, row keys…; ARGV: schema JSON, watermark µs or "", row values `[ts,…]`…
# Redis runs a script in isolation but does not undo it if it fails part-way, so the first pass reads and
# checks everything and the second only writes: a batch is stored whole or not at all. A key repeated within
# the batch is judged against its latest accepted time, as SQLite's row-by-row upsert does. Event times compare as
# Lua numbers (doubles), exact for µs up to 2**53 (year 2255).
_REDIS_WRITE = """
local schema = redis.call('GET', KEYS[2])
if schema and schema ~= ARGV[1] then return redis.error_reply('ARSSCHEMA ' .. schema) end
local mark = ARGV[2] ~= '' and tonumber(ARGV[2]) or nil
if ARGV[2] ~= '' and not mark then return redis.error_reply('ARSVALUE watermark ' .. ARGV[2]) end
local n, step = #KEYS, 1000
local put, seen, added = {}, {}, 0
for first = 3, n, step do
  local last = math.min(first + step - 1, n)
  local olds = redis.call('MGET', unpack(KEYS, first, last))
  for i = first, last do
    local key = KEYS[i]
    local new = tonumber(string.match(ARGV[i], '^%[(%-?%d+)[,%]]'))
    if not new then return redis.error_reply('ARSVALUE row ' .. key) end
    local was = seen[key]
    if was == nil then
      local old = olds[i - first + 1]
      if old then
        was = tonumber(string.match(old, '^%[(%-?%d+)'))
        if not was then return redis.error_reply('ARSVALUE stored ' .. key) end
      else
        was = false
        added = added + 1
      end
    end
    if was == false or new >= was then
      put[#put + 1] = key
      put[#put + 1] = ARGV[i]
      seen[key] = new
    else
      seen[key] = was
    end
  end
end
if not schema then redis.call('SET', KEYS[2], ARGV[1]) end
for first = 1, #put, 2 * step do
  redis.call('MSET', unpack(put, first, math.min(first + 2 * step - 1, #put)))
end
if added > 0 then redis.call('HINCRBY', KEYS[1], 'rows', added) end
if mark then
  local was = redis.call('HGET', KEYS[1], 'watermark')
  if not was or mark > tonumber(was) then redis.call('HSET', KEYS[1], 'watermark', ARGV[2]) end
end
return #put / 2
"""
_TABLES_KEY = "ars:ft:tables"


def _prefix(table: str) -> str:
    return f"ars:ft:{{{table}}}:"


class RedisOnlineStore:
    """The scale-out online store: Redis (or a server speaking its protocol), one string per entity.

    The client connects lazily; an unreachable server surfaces as BackendUnavailable on first use, with the
    URI's password masked. Timeouts are 2 s to connect and 10 s per command unless the URI sets its own
    (`?socket_timeout=…`); a dropped connection (a restarted server) is retried once, which is safe because
    every write is idempotent (newer-or-equal wins, the watermark only moves forward).
    """

    def __init__(self, uri: str) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self.uri = _redact(uri)
        try:
            db = urlsplit(uri).path.strip("/")
            if db and not db.isdigit():  # redis-py would silently use database 0
                raise ValueError(f"the database must be a number, as in redis://host:6379/0; got {db!r}")
            self._client: redis.Redis = redis.Redis.from_url(
                uri, socket_connect_timeout=2.0, socket_timeout=10.0,
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1))
        except ValueError as exc:
            raise InvalidInput(f"bad online store URI {self.uri!r}: {exc}", field="online_store") from None
        self._script = self._client.register_script(_REDIS_WRITE)
        self._schemas: dict[bytes, _Schema] = {}
        self._error: type[Exception] = redis.RedisError
        self._refused: type[Exception] = redis.ResponseError

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self.uri!r})"

    def _failed(self, exc: Exception) -> ArsenaleError:
        if isinstance(exc, self._refused):
            return BackendUnavailable(f"the online store at {self.uri} refused a command: {exc}")
        return BackendUnavailable(f"cannot reach the online store at {self.uri}: {exc}")

    def _schema(self, text: bytes) -> _Schema:
        schema = self._schemas.get(text)
        if schema is None:
            schema = self._schemas[text] = _Schema(text.decode())
        return schema

    def write(self, table: str, keys: list[str], frame: pa.Table, *, columns: list[str],
              watermark: datetime | None = None, batch_rows: int = 50_000) -> int:
        """Upsert the frame's rows, one Lua script call (atomic) per batch; the watermark with the last.

        Returns the rows stored: rows older than the stored ones are not counted.
        """
        keys, columns, mark, wanted = _check_write(table, keys, frame, columns, watermark, batch_rows)
        prefix = _prefix(table)
        head = [prefix + "#meta", prefix + "#schema"]
        last = max(0, (frame.num_rows - 1) // batch_rows)
        written = 0
        try:
            self._client.sadd(_TABLES_KEY, table)
            for number, batch in enumerate(_batches(frame, keys, columns, batch_rows, with_ts=True)):
                stamp = "" if number != last or mark is None else str(mark)
                written += int(self._script(keys=[*head, *[prefix + k for k in batch.keys]],
                                            args=[wanted, stamp, *batch.values]))
        except self._error as exc:
            message = str(exc)
            if isinstance(exc, self._refused) and message.startswith("ARSSCHEMA "):
                raise _schema_mismatch(table, message[len("ARSSCHEMA "):], wanted) from None
            raise self._failed(exc) from exc
        return written

    def read(self, table: str, keys: list[str], entity_keys: Sequence[Any],
             columns: Sequence[str] | None = None) -> list[tuple[datetime | None, dict[str, Any] | None]]:
        """The latest row of each entity, in request order: one MGET fetches the schema and every row."""
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
        hits = raw[1:]
        present = [h for h in hits if h is not None]
        rows = _decode("[" + b",".join(present).decode() + "]")
        return _assemble(hits, _times([r[0] for r in rows]), [r[1:] for r in rows], schema.columns, picks)

    def watermark(self, table: str) -> datetime | None:
        """The time the table is materialised up to; None when never set (or the table does not exist)."""
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
        """Delete the table's keys (found by SCAN, unlinked in chunks), then forget its name.

        The schema goes first, so that a concurrent reader sees "no such table" rather than a half-emptied one.
        Not one transaction (a table may hold millions of keys); a drop that fails part-way can be repeated.
        """
        _check_table(table)
        prefix = _prefix(table)
        try:
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
        """Registered names whose schema exists (a write that failed before its first batch leaves a name)."""
        try:
            names = sorted(n.decode() for n in self._client.smembers(_TABLES_KEY))
            schemas = self._client.mget([_prefix(n) + "#schema" for n in names]) if names else []
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


