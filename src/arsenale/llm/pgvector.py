"""The pgvector search structure of a vector index version: one PostgreSQL table per version, with an HNSW index.

    index = ars.VectorIndex("kb", backend="pgvector", dsn="postgresql://user@db:5432/vectors")

Versions stay what they are in the embedded backend (immutable, Parquet + `.npy` in the artifact store, their
digest checked on load: the source of truth); pgvector only holds the structure searched. A version's table is
named after its content, `ars_vec_<metric>_<digest prefix>`, holding `(pos, embedding)` where `pos` is the row's
position in the version, so a table is built once (in one transaction: it exists whole or not at all), shared
by identical versions, never changed afterwards, and a search of version N reads exactly version N's rows while
older versions stay searchable. The table name is recorded in the version's `files` (`pgvector.table`); a
version written by the embedded backend gets its table on its first pgvector search.

Scores follow the embedded convention (higher is better): `1 - (a <=> b)` is the cosine similarity,
`-(a <#> b)` the dot product, `-(a <-> b)` minus the L2 distance. Below `APPROX_ROWS` rows (or above pgvector's
2,000 indexable dimensions) the search is exact (a sequential scan); above, the HNSW index answers, with
`hnsw.ef_search` raised for recall. The DSN is never stored (it may hold a password).
"""

from __future__ import annotations

import os
import re
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from arsenale.errors import BackendUnavailable, IntegrityError, InvalidInput, NotFound
from arsenale.store.db import hide_password

__all__ = ["EF_SEARCH", "HNSW_EF_CONSTRUCTION", "HNSW_M", "MAX_INDEXED_DIM", "MissingTable", "check_dsn",
           "checked_table", "close_connections", "ensure_table", "search", "search_batch", "table_name"]

HNSW_M, HNSW_EF_CONSTRUCTION = 16, 100
EF_SEARCH = 200  # pgvector's default (40) loses recall on hard data; 200 keeps recall@10 ≈ 0.99
MAX_INDEXED_DIM = 2000  # pgvector's HNSW limit for the `vector` type
_OPS = {"cosine": ("vector_cosine_ops", "<=>"), "dot": ("vector_ip_ops", "<#>"), "l2": ("vector_l2_ops", "<->")}
_TABLE = re.compile(r"^ars_vec_(cosine|dot|l2)_[0-9a-f]{40}$")



class MissingTable(NotFound):
    """The version's table is not in this database (another DSN, or dropped): build it from the artifacts."""


_connections: dict[tuple[str, int, int], Any] = {}  # by DSN, process and thread: never shared by two
_lock = threading.Lock()


def check_dsn(dsn: Any) -> str:
    if not isinstance(dsn, str) or not dsn.startswith(("postgresql://", "postgres://")):
        raise InvalidInput("dsn must be a PostgreSQL URL (postgresql://user@host:port/database)", field="dsn")
    if len(dsn) > 2000:
        raise InvalidInput("dsn is longer than 2000 characters", field="dsn")
    return dsn


def table_name(digest: str, metric: str) -> str:
    """The table of a version's content (content-addressed, so validated rather than quoted from input)."""
    name = f"ars_vec_{metric}_{digest[:40]}"
    return checked_table(name)


def checked_table(name: Any) -> str:
    if not isinstance(name, str) or not _TABLE.match(name):
        raise IntegrityError(f"not a pgvector table name this index writes: {str(name)[:80]!r}")
    return name


@contextmanager
def _connection(dsn: str) -> Iterator[Any]:
    """One connection per DSN, process and thread, reused (a connection per search would cost more than the
    search; one per thread lets threads search at once); a broken one is replaced on the next call."""
    import psycopg

    key = (dsn, os.getpid(), threading.get_ident())
    with _lock:
        conn = _connections.get(key)
    if conn is None or conn.closed or conn.broken:
        try:
            conn = psycopg.connect(dsn, connect_timeout=5)
        except psycopg.Error as exc:
            raise BackendUnavailable(f"cannot connect to the pgvector database {hide_password(dsn)}: "
                                     f"{str(exc).strip()[:300]}") from None
        with _lock:
            _connections[key] = conn
    try:
        yield conn
    except psycopg.OperationalError as exc:
        conn.close()
        raise BackendUnavailable(f"the pgvector database {hide_password(dsn)} failed: "
                                 f"{str(exc).strip()[:300]}") from None
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise


def close_connections(dsn: str | None = None) -> None:
    """Close this process's connections (to `dsn`, or all): before a database is stopped or dropped."""
    with _lock:
        for key in [key for key in _connections if dsn is None or key[0] == dsn]:
            conn = _connections.pop(key)
            if key[1] == os.getpid():
                conn.close()


def _copy_stream(vectors: np.ndarray) -> bytes:
    """PostgreSQL's binary COPY format for rows (pos int4, embedding vector): built with numpy in one pass, since
    100,000 rows of text vectors would take longer to format than to index."""
    n, dim = vectors.shape
    row = np.dtype([("nfields", ">i2"), ("len_pos", ">i4"), ("pos", ">i4"), ("len_vec", ">i4"),
                    ("dim", ">i2"), ("unused", ">i2"), ("values", ">f4", (dim,))])
    out = np.zeros(n, dtype=row)
    out["nfields"], out["len_pos"], out["pos"] = 2, 4, np.arange(n, dtype=np.int64)
    out["len_vec"], out["dim"], out["values"] = 4 + 4 * dim, dim, vectors
    return b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + out.tobytes() + struct.pack(">h", -1)


def _exists(conn: Any, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def ensure_table(dsn: str, vectors: np.ndarray, digest: str, metric: str) -> str:
    """The table holding this version's vectors, built (with its HNSW index) if it is not there yet."""
    import psycopg
    from psycopg import sql

    table = table_name(digest, metric)
    n, dim = vectors.shape
    ops, _ = _OPS[metric]
    with _connection(dsn) as conn:
        if _exists(conn, table):
            conn.rollback()
            return table
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            conn.rollback()
            raise BackendUnavailable(f"the database {hide_password(dsn)} has no pgvector extension "
                                     f"(CREATE EXTENSION vector failed: {str(exc).strip()[:200]})") from None
        ident = sql.Identifier(table)
        try:
            conn.execute(sql.SQL("CREATE TABLE {} (pos integer PRIMARY KEY, embedding vector({}) NOT NULL)")
                         .format(ident, sql.Literal(int(dim))))
            with conn.cursor().copy(sql.SQL("COPY {} (pos, embedding) FROM STDIN WITH (FORMAT BINARY)")
                                    .format(ident)) as copy:
                copy.write(_copy_stream(np.ascontiguousarray(vectors, dtype=np.float32)))
            if dim <= MAX_INDEXED_DIM and n:
                # The graph should fit in memory while it is built, or pgvector builds it much more slowly.
                conn.execute("SELECT set_config('maintenance_work_mem', %s, true)",
                             (f"{max(64, min(2048, n * (dim * 4 + HNSW_M * 16) // 2**20 * 2))}MB",))
                conn.execute(sql.SQL("CREATE INDEX ON {} USING hnsw (embedding {}) WITH (m = {}, "
                                     "ef_construction = {})")
                             .format(ident, sql.SQL(ops), sql.Literal(HNSW_M), sql.Literal(HNSW_EF_CONSTRUCTION)))
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(f"arsenale {digest}")))
            conn.commit()
        except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
            conn.rollback()  # built meanwhile by another writer of the same content: theirs is the same table
            if not _exists(conn, table):
                raise
            conn.rollback()
    return table


def _literal(q: np.ndarray) -> str:
    # repr of a float32 widened to float64 round-trips exactly back to float32
    return "[" + ",".join(repr(x) for x in q.astype(np.float64).tolist()) + "]"


def _scores(metric: str, d: np.ndarray) -> np.ndarray:
    if metric == "cosine":
        return 1.0 - np.nan_to_num(d, nan=1.0)  # a zero vector has no direction: similarity 0, as embedded
    return -d


def _settings(conn: Any, k: int, exact: bool) -> None:
    # One round trip; `exact` turns index scans off: a sequential scan compares every row, as numpy does.
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('enable_indexscan', %s, true)",
                 (str(min(1000, max(EF_SEARCH, 2 * k))), "off" if exact else "on"))


def search(dsn: str, table: str, q: np.ndarray, k: int, metric: str, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores (best first; ties by position) of the `k` nearest rows of `table` to `q`."""
    import psycopg
    from psycopg import sql

    table = checked_table(table)
    _, op = _OPS[metric]
    order = sql.SQL(", pos") if exact else sql.SQL("")  # a second sort key would keep the index from answering
    query = sql.SQL("SELECT pos, embedding {op} %(q)s::vector AS d FROM {t} ORDER BY embedding {op} %(q)s::vector"
                    "{order} LIMIT %(k)s").format(op=sql.SQL(op), t=sql.Identifier(table), order=order)
    with _connection(dsn) as conn:
        _settings(conn, k, exact)
        try:
            rows = conn.execute(query, {"q": _literal(q), "k": k}).fetchall()
        except psycopg.errors.UndefinedTable:
            raise MissingTable(f"no pgvector table {table}") from None
        conn.rollback()  # read only: end the transaction that scoped the settings
    return _ranked(rows, metric)


def _ranked(rows: list[Any], metric: str) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray([r[0] for r in rows], dtype=np.int64)
    scores = _scores(metric, np.asarray([r[1] for r in rows], dtype=np.float64))
    order = np.lexsort((pos, -scores))
    return pos[order], scores[order]


def search_batch(dsn: str, table: str, queries: np.ndarray, k: int, metric: str,
                 exact: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """`search` for many queries in one round trip (a lateral join, each query answered by the index)."""
    from psycopg import sql

    table = checked_table(table)
    _, op = _OPS[metric]
    query = sql.SQL("SELECT q.i, t.pos, t.d FROM unnest(%(qs)s::vector[]) WITH ORDINALITY AS q(v, i) "
                    "CROSS JOIN LATERAL (SELECT pos, embedding {op} q.v AS d FROM {t} "
                    "ORDER BY embedding {op} q.v LIMIT %(k)s) AS t").format(op=sql.SQL(op), t=sql.Identifier(table))
    with _connection(dsn) as conn:
        _settings(conn, k, exact)
        rows = conn.execute(query, {"qs": [_literal(q) for q in queries], "k": k}).fetchall()
        conn.rollback()
    per: list[list[Any]] = [[] for _ in range(len(queries))]
    for i, pos, d in rows:
        per[i - 1].append((pos, d))
    return [_ranked(r, metric) for r in per]
