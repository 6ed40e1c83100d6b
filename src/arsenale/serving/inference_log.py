"""The inference log: what each deployment was asked, what it answered, and (later) what was true.

Serving calls `InferenceLog.log` on the request path, so logging must cost a request almost nothing:
the call decides sampling, appends a reference to an in-memory queue and returns. A background thread
turns queued requests into Parquet files, one per hour partition and flush:

    <root>/<deployment>/date=YYYY-MM-DD/hour=HH/<replica>-<seq>.parquet
    <root>/<deployment>/feedback/date=YYYY-MM-DD/hour=HH/<replica>-<seq>.parquet

Design choices, and why:

- One Parquet row per input row. Each input field becomes its own column (`in.<field>`), typed when the
  batch's values agree (numbers, strings, booleans, times) and JSON text otherwise (lists, objects, mixed
  types). Monitoring reads columns, not documents: 1 M logged rows read back without parsing JSON.
  Inputs whose fields change between requests simply give files with different columns; readers unify
  the schemas (a missing column reads as null, int and float become float, other clashes become text).
- Predictions and labels are stored as text (`json.dumps`, or the string itself), so a label of any type
  joins and compares with any prediction; readers turn them back into numbers when every value is one.
- Feedback lives in its own files and is joined at read time, by request id (the latest label wins). It
  may therefore arrive before its request is flushed, and it is kept for requests sampling left out.
- Sampling hashes the request id, so every replica, and the route and shadows of one request, keep or
  drop the same requests without talking to each other.
- Files are written under a temporary name and renamed (local folders) or uploaded in one piece (object
  stores publish an object only when its upload completes): a reader never sees half a file. Remote
  roots are fsspec URLs with `storage_options`, exactly as for the artifact store.
- Memory is bounded: when the writer falls behind (a slow or failing disk), new rows are dropped and
  counted (`dropped`) rather than blocking requests. Rows whose write failed stay queued and are retried
  on the next flush; an explicit `flush()` or `close()` raises when they still cannot be written.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from arsenale.errors import BackendUnavailable, InvalidInput
from arsenale.serving.models import check_deployment_name

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
FEEDBACK_DIR = "feedback"
FEATURE_PREFIX = "in."
# Feedback timestamps come from other systems whose clocks may lag the replicas'; reading labels for
# requests since t looks at feedback since t minus this much.
FEEDBACK_SKEW_MS = HOUR_MS
ROLES = ("route", "shadow")
META_COLUMNS = ("request_id", "row", "model", "version", "role", "timestamp_ms", "latency_ms", "prediction",
                "output")
_REPLICA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_SCALAR_TYPES = (pa.types.is_boolean, pa.types.is_integer, pa.types.is_floating, pa.types.is_string,
                 pa.types.is_large_string, pa.types.is_timestamp, pa.types.is_date, pa.types.is_null)
_NUMERIC_TYPES = (pa.types.is_boolean, pa.types.is_integer, pa.types.is_floating)


def sampled(request_id: str, rate: float) -> bool:
    """Whether `request_id` is logged at this sample rate; the same answer in every process."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2.0**64


def _filesystem(root: str, storage_options: Mapping[str, Any] | None) -> tuple[pafs.FileSystem, str, bool]:
    """(filesystem, base path, is a local folder) for a folder or an fsspec URL (as for artifacts)."""
    if not isinstance(root, str) or not root.strip():
        raise InvalidInput("the inference log root is a folder or a filesystem URL", field="root")
    if "://" not in root or root.startswith("file://"):
        path = root[len("file://"):] if root.startswith("file://") else root
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path)), True
    import fsspec

    try:
        remote, path = fsspec.core.url_to_fs(root, **dict(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise InvalidInput(f"cannot open the inference log at {root!r}: {exc}", field="root") from exc
    return pafs.PyFileSystem(pafs.FSSpecHandler(remote)), path.rstrip("/"), False


def _deployment_dir(root: str, deployment: str,
                    storage_options: Mapping[str, Any] | None = None) -> tuple[pafs.FileSystem, str, bool]:
    check_deployment_name(deployment)  # letters, digits, '_', '.', '-': no separator, no '..' escape
    fs, base, local = _filesystem(root, storage_options)
    return fs, f"{base}/{deployment}", local


def _partition(timestamp_ms: int) -> str:
    t = datetime.fromtimestamp(timestamp_ms / 1000, tz=timezone.utc)
    return f"date={t:%Y-%m-%d}/hour={t:%H}"


def _text(value: Any) -> str | None:
    """A prediction or label as text: strings as they are, everything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, (datetime,)):
        return value.isoformat()
    return str(value)


def _prediction(output: Any) -> Any:
    if isinstance(output, Mapping):
        for key in ("prediction", "predictions"):
            if key in output:
                return output[key]
    return output


@dataclass
class _Chunk:
    """Rows of one partition, converted and waiting to be written (again, after a failure)."""

    folder: str
    table: pa.Table
    rows: int


class InferenceLog:
    """The log of one deployment on one replica; thread-safe, one background writer thread."""

    def __init__(self, root: str, deployment: str, *, sample_rate: float = 1.0, flush_rows: int = 1000,
                 flush_seconds: float = 5.0, replica: str | None = None,
                 max_pending_rows: int = 200_000, storage_options: Mapping[str, Any] | None = None) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) \
                or not 0 <= sample_rate <= 1:
            raise InvalidInput(f"sample_rate is a number in [0, 1], got {sample_rate!r}",
                               field="sample_rate")
        if isinstance(flush_rows, bool) or not isinstance(flush_rows, int) or flush_rows < 1:
            raise InvalidInput(f"flush_rows is a positive integer, got {flush_rows!r}", field="flush_rows")
        if not isinstance(flush_seconds, (int, float)) or not flush_seconds > 0:
            raise InvalidInput(f"flush_seconds is a positive number, got {flush_seconds!r}",
                               field="flush_seconds")
        if not isinstance(max_pending_rows, int) or max_pending_rows < flush_rows:
            raise InvalidInput("max_pending_rows is an integer of at least flush_rows",
                               field="max_pending_rows")
        if replica is None:
            host = re.sub(r"[^A-Za-z0-9_.\-]", "-", socket.gethostname()).lstrip("-.") or "replica"
            replica = f"{host[:100]}-{os.getpid()}"
        if not isinstance(replica, str) or not _REPLICA.match(replica):
            raise InvalidInput(f"replica is 1-128 letters, digits, '_', '.', '-'; got {replica!r}",
                               field="replica")
        self._fs, self._dir, self._local = _deployment_dir(root, deployment, storage_options)
        self.deployment = deployment
        self.replica = replica
        self._rate = float(sample_rate)
        self._flush_rows = flush_rows
        self._flush_seconds = float(flush_seconds)
        self._max_pending = max_pending_rows
        # File sequence numbers start from the clock so that a restarted replica never reuses a name.
        self._session = f"{int(time.time() * 1000):013d}"
        self._counter = 0

        self._lock = threading.Lock()  # guards the queues and counters below; held for O(1) work only
        self._records: list[tuple[Any, ...]] = []
        self._feedback: list[tuple[str, Any, int]] = []
        self._queued = 0  # rows in the two queues
        self._pending = 0  # rows queued or converted but not yet written: what memory holds
        self._dropped = 0
        self._closed = False
        self._write_lock = threading.Lock()  # one flush at a time
        self._backlog: list[_Chunk] = []
        self.failed_writes = 0
        self.last_error: str | None = None

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"inference-log-{deployment}", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    # ---- the request path ------------------------------------------------------------

    def log(self, *, request_id: str, model: str, version: int, role: str, inputs: list[dict],
            outputs: list[Any], latency_ms: float, timestamp_ms: int) -> None:
        """Queue one request's rows (the lists are kept by reference: do not change them afterwards)."""
        if role not in ROLES:
            raise InvalidInput(f"role is 'route' or 'shadow', got {role!r}", field="role")
        if not isinstance(request_id, str):
            raise InvalidInput("request_id is a string", field="request_id")
        if self._rate < 1.0 and not sampled(request_id, self._rate):
            return
        n = len(inputs)
        with self._lock:
            if self._closed or self._pending + n > self._max_pending:
                self._dropped += n
                return
            self._records.append((request_id, model, version, role, inputs, outputs, latency_ms,
                                  timestamp_ms))
            self._queued += n
            self._pending += n
            if self._queued >= self._flush_rows and not self._wake.is_set():
                self._wake.set()

    def feedback(self, request_id: str, label: Any, timestamp_ms: int) -> None:
        """Record the true outcome of a request (every row, or one label per row when given a list)."""
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInput("request_id is a non-empty string", field="request_id")
        with self._lock:
            if self._closed or self._pending + 1 > self._max_pending:
                self._dropped += 1
                return
            self._feedback.append((request_id, label, int(timestamp_ms)))
            self._queued += 1
            self._pending += 1
            if self._queued >= self._flush_rows and not self._wake.is_set():
                self._wake.set()

    @property
    def dropped(self) -> int:
        """Rows (and labels) refused because the writer had fallen behind or the log was closed."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Rows accepted but not yet in a file."""
        return self._pending

    # ---- writing ---------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything queued; raises BackendUnavailable when a write fails (the rows stay queued)."""
        with self._write_lock:
            with self._lock:
                records, self._records = self._records, []
                feedback, self._feedback = self._feedback, []
                self._queued = 0
            try:
                self._backlog.extend(_request_chunks(self._dir, records))
            except Exception:  # a value no conversion copes with: count the rows, never hide them
                self._lose(sum(len(r[4]) for r in records), "requests")
            try:
                self._backlog.extend(_feedback_chunks(f"{self._dir}/{FEEDBACK_DIR}", feedback))
            except Exception:
                self._lose(len(feedback), "labels")
            while self._backlog:
                chunk = self._backlog[0]
                try:
                    self._write(chunk)
                except Exception as exc:
                    self.failed_writes += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    raise BackendUnavailable(f"the inference log of {self.deployment!r} could not write "
                                             f"{chunk.folder}: {exc}; {self._pending} rows wait for the "
                                             "next flush", field="root") from exc
                self._backlog.pop(0)
                with self._lock:
                    self._pending -= chunk.rows

    def _lose(self, rows: int, what: str) -> None:
        log.exception("inference log of %r could not convert %d %s; counted as dropped", self.deployment,
                      rows, what)
        with self._lock:
            self._pending -= rows
            self._dropped += rows

    def close(self) -> None:
        """Stop accepting rows and write everything; raises when rows could not be written."""
        with self._lock:
            self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        atexit.unregister(self._at_exit)
        self.flush()

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception:  # nobody is left to tell but the log
            log.exception("inference log of %r lost rows at exit", self.deployment)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:
                log.warning("inference log write failed; retrying in %.1f s", self._flush_seconds,
                            exc_info=True)
                self._stop.wait(self._flush_seconds)  # back off instead of hammering a failing store

    def _next_name(self, folder: str) -> str:
        self._counter += 1
        return f"{folder}/{self.replica}-{self._session}{self._counter:06d}.parquet"

    def _write(self, chunk: _Chunk) -> None:
        name = self._next_name(chunk.folder)
        if not self._local:  # an object store publishes the object when its upload completes
            self._fs.create_dir(chunk.folder, recursive=True)
            _write_parquet(chunk.table, name, self._fs)
            return
        os.makedirs(chunk.folder, exist_ok=True)
        tmp = f"{chunk.folder}/.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as out:
                _write_parquet(chunk.table, out, None)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, name)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _write_parquet(table: pa.Table, where: Any, fs: pafs.FileSystem | None) -> None:
    pq.write_table(table, where, filesystem=fs, compression="zstd")


# ---- converting queued requests into tables ------------------------------------------


def _request_chunks(folder: str, records: list[tuple[Any, ...]]) -> list[_Chunk]:
    by_hour: dict[int, list[tuple[Any, ...]]] = {}
    for rec in records:
        by_hour.setdefault(int(rec[7]) // HOUR_MS, []).append(rec)
    chunks = []
    for hour, recs in sorted(by_hour.items()):
        table = _request_table(recs)
        if table.num_rows:
            chunks.append(_Chunk(f"{folder}/{_partition(hour * HOUR_MS)}", table, table.num_rows))
    return chunks


def _request_table(records: list[tuple[Any, ...]]) -> pa.Table:
    cols: dict[str, list[Any]] = {name: [] for name in META_COLUMNS}
    rows: list[Mapping[str, Any]] = []
    for request_id, model, version, role, inputs, outputs, latency_ms, timestamp_ms in records:
        outputs = list(outputs) if outputs is not None else []
        for i, row in enumerate(inputs):
            out = outputs[i] if i < len(outputs) else None
            cols["request_id"].append(str(request_id))
            cols["row"].append(i)
            cols["model"].append(str(model))
            cols["version"].append(int(version))
            cols["role"].append(role)
            cols["timestamp_ms"].append(int(timestamp_ms))
            cols["latency_ms"].append(float(latency_ms))
            cols["prediction"].append(_text(_prediction(out)))
            cols["output"].append(None if out is None else json.dumps(out, default=_json_default))
            rows.append(row if isinstance(row, Mapping) else {"input": row})
    arrays: dict[str, pa.Array] = {
        "request_id": pa.array(cols["request_id"], pa.string()),
        "row": pa.array(cols["row"], pa.int32()),
        "model": pa.array(cols["model"], pa.string()).dictionary_encode(),
        "version": pa.array(cols["version"], pa.int32()),
        "role": pa.array(cols["role"], pa.string()).dictionary_encode(),
        "timestamp_ms": pa.array(cols["timestamp_ms"], pa.int64()),
        "latency_ms": pa.array(cols["latency_ms"], pa.float64()),
        "prediction": pa.array(cols["prediction"], pa.string()),
        "output": pa.array(cols["output"], pa.string()),
    }
    arrays.update(_feature_arrays(rows))
    return pa.table(arrays)


def _feature_arrays(rows: list[Mapping[str, Any]]) -> dict[str, pa.Array]:
    """One column per input field: typed when the values agree, JSON text otherwise."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    out = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        try:
            arr = pa.array(values)
            typed = any(check(arr.type) for check in _SCALAR_TYPES)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError,
                ValueError):
            typed = False
        if not typed:
            arr = pa.array([None if v is None else json.dumps(v, default=_json_default) for v in values],
                           pa.string())
        out[FEATURE_PREFIX + str(key)] = arr
    return out


def _feedback_chunks(folder: str, feedback: list[tuple[str, Any, int]]) -> list[_Chunk]:
    """Labels as rows (request_id, row, label, timestamp_ms); row -1 labels every row of the request."""
    by_hour: dict[int, dict[str, list[Any]]] = {}
    calls: dict[int, int] = {}
    for request_id, label, timestamp_ms in feedback:
        hour = timestamp_ms // HOUR_MS
        calls[hour] = calls.get(hour, 0) + 1
        cols = by_hour.setdefault(hour, {"request_id": [], "row": [], "label": [], "timestamp_ms": []})
        labels = list(enumerate(label)) if isinstance(label, (list, tuple)) else [(-1, label)]
        for row, value in labels:
            cols["request_id"].append(request_id)
            cols["row"].append(row)
            cols["label"].append(_text(value))
            cols["timestamp_ms"].append(timestamp_ms)
    chunks = []
    for hour, cols in sorted(by_hour.items()):
        table = pa.table({"request_id": pa.array(cols["request_id"], pa.string()),
                          "row": pa.array(cols["row"], pa.int32()),
                          "label": pa.array(cols["label"], pa.string()),
                          "timestamp_ms": pa.array(cols["timestamp_ms"], pa.int64())})
        # A label list is one accepted entry in the queue, however many rows it becomes here.
        chunks.append(_Chunk(f"{folder}/{_partition(hour * HOUR_MS)}", table, calls[hour]))
    return chunks


# ---- reading -------------------------------------------------------------------------


def _hour_folders(fs: pafs.FileSystem, base: str, since_ms: int | None, until_ms: int | None) -> list[str]:
    """The `date=…/hour=…` folders under `base` whose hour overlaps [since_ms, until_ms]."""
    def overlaps(start: int, length: int) -> bool:
        return (since_ms is None or start + length > since_ms) and (until_ms is None or start <= until_ms)

    folders = []
    for day in _listing(fs, base, pafs.FileType.Directory):
        try:
            day_start = int(datetime.strptime(day.base_name, "date=%Y-%m-%d")
                            .replace(tzinfo=timezone.utc).timestamp() * 1000)
        except ValueError:
            continue  # not a partition (e.g. the feedback folder)
        if not overlaps(day_start, 24 * HOUR_MS):
            continue
        for hour in _listing(fs, day.path, pafs.FileType.Directory):
            if not re.fullmatch(r"hour=\d\d", hour.base_name):
                continue
            if overlaps(day_start + int(hour.base_name[5:]) * HOUR_MS, HOUR_MS):
                folders.append(hour.path)
    return folders


def _listing(fs: pafs.FileSystem, folder: str, kind: pafs.FileType) -> list[pafs.FileInfo]:
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    return sorted((i for i in infos if i.type == kind), key=lambda i: i.base_name)


def _parquet_files(fs: pafs.FileSystem, folders: list[str]) -> list[str]:
    """Finished files only: temporary names start with '.' and end with '.tmp'."""
    return [i.path for folder in folders for i in _listing(fs, folder, pafs.FileType.File)
            if i.base_name.endswith(".parquet") and not i.base_name.startswith(".")]


def _unified_schema(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema over files whose columns differ: int and float give float, other clashes give text."""
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for field in schema:
            types.setdefault(field.name, []).append(field.type)
    fields = []
    for name, seen in types.items():
        distinct = list(dict.fromkeys(t for t in seen if not pa.types.is_null(t)))
        if not distinct:
            kind = pa.null()
        elif len(distinct) == 1:
            kind = distinct[0]
        elif all(any(check(t) for check in _NUMERIC_TYPES) for t in distinct):
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _scan(fs: pafs.FileSystem, files: list[str], columns: list[str] | None,
          where: ds.Expression | None) -> pa.Table | None:
    if not files:
        return None
    dataset = ds.dataset(files, format="parquet", filesystem=fs)
    schema = _unified_schema([fragment.physical_schema for fragment in dataset.get_fragments()])
    dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=fs)
    if columns is not None:
        columns = [c for c in columns if c in schema.names]
    return dataset.to_table(columns=columns, filter=where)


def _requests(root: str, deployment: str, since_ms: int | None, until_ms: int | None, role: str | None,
              columns: list[str] | None,
              storage_options: Mapping[str, Any] | None) -> tuple[pa.Table, pa.Table]:
    """Logged rows, oldest first, and the labels that may concern them."""
    if role is not None and role not in ROLES:
        raise InvalidInput(f"role is 'route', 'shadow' or None (both), got {role!r}", field="role")
    for value, field in ((since_ms, "since_ms"), (until_ms, "until_ms")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInput(f"{field} is milliseconds since the epoch, got {value!r}", field=field)
    fs, folder, _ = _deployment_dir(root, deployment, storage_options)
    where = None
    for clause in (None if since_ms is None else ds.field("timestamp_ms") >= since_ms,
                   None if until_ms is None else ds.field("timestamp_ms") <= until_ms,
                   None if role is None else ds.field("role") == role):
        if clause is not None:
            where = clause if where is None else where & clause
    table = _scan(fs, _parquet_files(fs, _hour_folders(fs, folder, since_ms, until_ms)), columns, where)
    if table is None:
        empty = _REQUEST_SCHEMA.empty_table()
        table = empty.select([c for c in columns if c in empty.column_names]) if columns else empty
    table = table.sort_by("timestamp_ms")
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    feedback_since = None if since_ms is None else since_ms - FEEDBACK_SKEW_MS
    label_files = _parquet_files(fs, _hour_folders(fs, f"{folder}/{FEEDBACK_DIR}", feedback_since, None))
    labels = _scan(fs, label_files, None,
                   None if feedback_since is None else ds.field("timestamp_ms") >= feedback_since)
    return table, _LABEL_SCHEMA.empty_table() if labels is None else labels


_REQUEST_SCHEMA = pa.schema([("request_id", pa.string()), ("row", pa.int32()), ("model", pa.string()),
                             ("version", pa.int32()), ("role", pa.string()), ("timestamp_ms", pa.int64()),
                             ("latency_ms", pa.float64()), ("prediction", pa.string()),
                             ("output", pa.string())])
_LABEL_SCHEMA = pa.schema([("request_id", pa.string()), ("row", pa.int32()), ("label", pa.string()),
                           ("timestamp_ms", pa.int64())])


def _key(request_id: Any, row: Any) -> Any:
    return pc.binary_join_element_wise(request_id, pc.cast(row, pa.string()), "\x1f")


def _latest(labels: pa.Table) -> pa.Table:
    """The last label given per (request, row): by feedback time, then by order of arrival."""
    keyed = labels.append_column("key", _key(labels["request_id"], labels["row"]))
    keyed = keyed.append_column("order", pa.array(np.arange(keyed.num_rows)))
    keyed = keyed.sort_by([("key", "ascending"), ("timestamp_ms", "ascending"), ("order", "ascending")])
    keys = keyed["key"].combine_chunks()
    n = len(keys)
    last = pc.not_equal(keys.slice(0, n - 1), keys.slice(1)).to_numpy(zero_copy_only=False)
    return keyed.filter(pa.array(np.append(last, True)))


def _label_text(table: pa.Table, labels: pa.Table) -> pa.Array:
    """Each logged row's label as text: the later of its own row's label and its whole request's."""
    if labels.num_rows == 0 or table.num_rows == 0:
        return pa.nulls(table.num_rows, pa.string())
    latest = _latest(labels)
    value_set = latest["key"].combine_chunks()
    whole = pc.index_in(_key(table["request_id"], pa.array(np.full(table.num_rows, -1, dtype="int32"))),
                        value_set=value_set)
    label = latest["label"].take(whole)
    stamp = latest["timestamp_ms"].take(whole)
    own = pc.index_in(_key(table["request_id"], table["row"]), value_set=value_set)
    own_label = latest["label"].take(own)
    own_later = pc.fill_null(pc.greater_equal(latest["timestamp_ms"].take(own), stamp), True)
    use_own = pc.and_(pc.is_valid(own), own_later)
    return pc.if_else(use_own, own_label, label).combine_chunks()


def _typed(text: Any) -> Any:
    """Numbers when every present value is one, else the text."""
    try:
        return pc.cast(text, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return text


def _matches(prediction: Any, label: Any) -> np.ndarray:
    """Equal as numbers when both are numbers ('1' and '1.0'), else equal as text."""
    p_text = pd.Series(prediction.to_pandas(), dtype=object)
    l_text = pd.Series(label.to_pandas(), dtype=object)
    p_num = pd.to_numeric(p_text, errors="coerce").to_numpy(dtype="float64")
    l_num = pd.to_numeric(l_text, errors="coerce").to_numpy(dtype="float64")
    numeric = ~np.isnan(p_num) & ~np.isnan(l_num)
    return np.where(numeric, p_num == l_num, (p_text == l_text).to_numpy(dtype=bool))


def read_log(root: str, deployment: str, *, since_ms: int | None = None, until_ms: int | None = None,
             role: str | None = "route", storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per logged input row, oldest first, with its input fields as columns and its label.

    `label` is NaN until feedback arrives. Predictions and labels are numbers when every value is
    one. An input field named like a metadata column keeps its `in.` prefix. `role=None` reads the
    answering versions and the shadows."""
    table, labels = _requests(root, deployment, since_ms, until_ms, role, None, storage_options)
    label = _typed(_label_text(table, labels))
    names = []
    for name in table.column_names:
        bare = name[len(FEATURE_PREFIX):] if name.startswith(FEATURE_PREFIX) else None
        clash = bare is None or bare in META_COLUMNS or bare == "label" or bare in table.column_names
        names.append(name if clash else bare)
    table = table.rename_columns(names)
    table = table.set_column(table.schema.get_field_index("prediction"), "prediction",
                             _typed(table["prediction"]))
    return table.append_column("label", label).to_pandas()


def online_accuracy(root: str, deployment: str, *, since_ms: int | None = None,
                    storage_options: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per "model/version" (answering or shadow): labelled rows, correct predictions and their ratio."""
    columns = ["request_id", "row", "model", "version", "timestamp_ms", "prediction"]
    table, labels = _requests(root, deployment, since_ms, None, None, columns, storage_options)
    label = _label_text(table, labels)
    labelled = pc.is_valid(label)
    p_num, l_num = _typed(table["prediction"]), _typed(label)
    if pa.types.is_floating(p_num.type) and pa.types.is_floating(l_num.type):
        correct = pc.fill_null(pc.equal(p_num, l_num), False)
    else:
        correct = pa.array(_matches(table["prediction"], label))
    keys = pc.binary_join_element_wise(table["model"], pc.cast(table["version"], pa.string()), "/")
    summary = pa.table({"key": keys, "labelled": pc.cast(labelled, pa.int64()),
                        "correct": pc.cast(pc.and_(labelled, correct), pa.int64())})
    summary = summary.group_by("key").aggregate([("labelled", "sum"), ("correct", "sum")])
    out: dict[str, dict[str, Any]] = {}
    for key, n, k in zip(*(summary[c].to_pylist() for c in ("key", "labelled_sum", "correct_sum"))):
        out[key] = {"labelled": n, "correct": k, "accuracy": k / n if n else None}
    return dict(sorted(out.items()))
