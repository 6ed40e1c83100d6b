"""The online store's conformance suite: every behaviour runs on SQLite and on a real Redis (`online_uri`)."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from arsenale.errors import BackendUnavailable, InvalidInput, NotFound
from arsenale.features import online, online_redis, online_sqlite
from arsenale.features.online import encode_key, open_online_store

UTC = timezone.utc
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def patch_batches(monkeypatch: pytest.MonkeyPatch, batches: Any) -> None:
    """Replace the batch encoder both backends use."""
    for backend in (online_sqlite, online_redis):
        monkeypatch.setattr(backend, "_batches", batches)


def frame(ids: list[Any], times: list[datetime], **columns: Any) -> pa.Table:
    return pa.table({"id": ids, "__ts": pa.array(times, TS), **columns})


def scores(ids: list[int], when: datetime, value: float) -> pa.Table:
    return frame(ids, [when] * len(ids), score=[value + i for i in ids])


@pytest.fixture
def store(online_uri: str) -> Iterator[online.OnlineStore]:
    s = open_online_store(online_uri)
    yield s
    s.close()


def test_round_trip_of_mixed_types(store: online.OnlineStore) -> None:
    naive = datetime(2023, 5, 6, 7, 8, 9, 123456)
    edges = [datetime(1, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             datetime(2106, 2, 7, 6, 28, 16, 1, tzinfo=UTC)]
    # Beyond ±2**32 s a float of seconds loses µs: these must come back exact all the same.
    far = [datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(3000, 1, 1, 0, 0, 0, 7, tzinfo=UTC),
           datetime(1800, 1, 1, 0, 0, 0, 3, tzinfo=UTC), None]
    data = frame(
        [1, 2, 3, 4], [T0, T0 + timedelta(microseconds=1), datetime(1900, 1, 1, tzinfo=UTC), T0],
        i=pa.array([1, None, -(2**63), 2**62], pa.int64()),
        f=[1.0, float("nan"), 0.1, float("-inf")],
        b=[True, False, None, True],
        s=['quote " and \\ back', "ümlaut, comma", None, "tab\tnewline\n"],
        t=pa.array([naive, None, *edges[1:]], pa.timestamp("ns")),
        edge=pa.array(edges + [None], TS),
        far=pa.array(far, TS),
        d=pa.array([date(2024, 2, 29), None, date(1, 1, 1), date(9999, 12, 31)]),
        l=[[1.5, None], [], None, [3.0]],
        n=pa.nulls(4),
        cat=pa.array(["a", "b", "a", None]).dictionary_encode(),
    )
    columns = ["i", "f", "b", "s", "t", "edge", "far", "d", "l", "n", "cat"]
    assert store.write("mixed@1", ["id"], data, columns=columns) == 4
    got = store.read("mixed@1", ["id"], [(1,), (2,), (3,), (4,)])
    assert [when for when, _ in got] == [T0, T0 + timedelta(microseconds=1), datetime(1900, 1, 1, tzinfo=UTC), T0]
    rows = [row for _, row in got]
    assert [row.pop("far") for row in rows] == far
    assert rows[0] == {"i": 1, "f": 1.0, "b": True, "s": 'quote " and \\ back', "t": naive.replace(tzinfo=UTC),
                       "edge": edges[0], "d": date(2024, 2, 29), "l": [1.5, None], "n": None, "cat": "a"}
    assert type(rows[0]["f"]) is float  # an integral float stays a float
    assert rows[1] == {"i": None, "f": None, "b": False, "s": "ümlaut, comma", "t": None, "edge": edges[1],
                       "d": None, "l": [], "n": None, "cat": "b"}
    assert rows[2]["i"] == -(2**63) and rows[2]["f"] == 0.1 and rows[2]["t"] == edges[1]
    assert rows[2]["edge"] == edges[2] and rows[2]["d"] == date(1, 1, 1) and rows[2]["l"] is None
    assert rows[3]["f"] == float("-inf") and rows[3]["s"] == "tab\tnewline\n" and rows[3]["edge"] is None
    assert rows[3]["t"] == edges[2] and rows[3]["d"] == date(9999, 12, 31) and rows[3]["cat"] is None
    assert all(w.tzinfo is not None and w.utcoffset() == timedelta(0) for w, _ in got)
    assert store.read("mixed@1", ["id"], [4, 1], columns=["s", "i"]) == [
        (T0, {"s": "tab\tnewline\n", "i": 2**62}), (T0, {"s": 'quote " and \\ back', "i": 1})]


def test_newer_wins_and_older_is_ignored(store: online.OnlineStore) -> None:
    assert store.write("s@1", ["id"], scores([1, 2, 3], T0, 10.0), columns=["score"]) == 3
    later = T0 + timedelta(hours=1)
    assert store.write("s@1", ["id"], scores([1, 2], later, 20.0), columns=["score"]) == 2
    # Replaying the first batch changes nothing; an equal event time replaces (last write wins on a tie).
    assert store.write("s@1", ["id"], scores([1, 2, 3], T0, 10.0), columns=["score"]) == 1
    assert store.write("s@1", ["id"], scores([2], later, 30.0), columns=["score"]) == 1
    assert store.read("s@1", ["id"], [1, 2, 3]) == [
        (later, {"score": 21.0}), (later, {"score": 32.0}), (T0, {"score": 13.0})]
    # Within one frame, and across batches of one write, the newest row of a key wins wherever it comes.
    mixed = frame([7, 7, 7, 7], [T0 + timedelta(minutes=m) for m in (5, 9, 3, 9)], score=[5.0, 9.0, 3.0, 9.5])
    store.write("s@1", ["id"], mixed, columns=["score"], batch_rows=3)
    store.write("s@1", ["id"], mixed, columns=["score"])
    assert store.read("s@1", ["id"], [7]) == [(T0 + timedelta(minutes=9), {"score": 9.5})]
    assert store.stats("s@1")["rows"] == 4


def test_absent_keys_come_back_as_none_in_request_order(store: online.OnlineStore) -> None:
    store.write("a@1", ["id"], scores([1, 3], T0, 0.0), columns=["score"])
    assert store.read("a@1", ["id"], [3, 2, 1, 3, 99]) == [
        (T0, {"score": 3.0}), (None, None), (T0, {"score": 1.0}), (T0, {"score": 3.0}), (None, None)]
    assert store.read("a@1", ["id"], [5, 6]) == [(None, None), (None, None)]
    assert store.read("a@1", ["id"], []) == []


def test_many_keys_in_one_read(store: online.OnlineStore) -> None:
    """Above SQLite's variable limit (32,766) the lookup is chunked; the order still follows the request."""
    n = 33_000
    store.write("big@1", ["id"], frame(list(range(n)), [T0] * n, v=list(range(n))), columns=["v"],
                batch_rows=10_000)
    wanted = list(range(n + 10))[::-1]
    got = store.read("big@1", ["id"], wanted)
    assert [row["v"] if row else None for _, row in got] == [i if i < n else None for i in wanted]


def test_multi_column_keys(store: online.OnlineStore) -> None:
    data = pa.table({"shop": [1, 1, 2], "sku": ["a,b", "a", "a"], "__ts": pa.array([T0] * 3, TS),
                     "qty": [1, 2, 3]})
    store.write("inv@1", ["shop", "sku"], data, columns=["qty"])
    got = store.read("inv@1", ["shop", "sku"], [(1, "a"), [2, "a"], (1, "a,b"), (2, "a,b"), (np.int64(1), "a")])
    assert [row["qty"] if row else None for _, row in got] == [2, 3, 1, None, 2]
    with pytest.raises(InvalidInput, match="part"):
        store.read("inv@1", ["shop", "sku"], [(1,)])
    with pytest.raises(InvalidInput, match="keyed by"):
        store.read("inv@1", ["sku", "shop"], [("a", 1)])


def test_key_canonicalisation() -> None:
    assert encode_key([42]) == encode_key((np.int64(42),)) == encode_key([42.0]) == encode_key(42) == "42"
    assert encode_key(["42"]) != encode_key([42])
    assert encode_key([np.float32(1.5)]) == encode_key([1.5]) != encode_key([1])
    assert encode_key([True]) != encode_key([1])
    assert encode_key([np.str_("x")]) == encode_key(["x"])
    assert encode_key([datetime(2024, 1, 1)]) == encode_key([datetime(2024, 1, 1, tzinfo=UTC)])
    # A separator or quote inside a string cannot make two different keys collide.
    assert encode_key(["a,b"]) != encode_key(["a", "b"])
    assert encode_key(['a",1']) != encode_key(["a", 1])
    assert encode_key(["a\\", "b"]) != encode_key(["a", "\\b"])
    for bad in ([None], [float("nan")], [np.float64("nan")], [float("inf")], [], [object()], [b"x"]):
        with pytest.raises(InvalidInput):
            encode_key(bad)


def test_keys_written_by_any_column_type_are_found_by_python_values(store: online.OnlineStore) -> None:
    """The vectorised encoding of a key column gives exactly `encode_key` of the Python value."""
    when = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    cases: list[tuple[pa.Array, list[Any]]] = [
        (pa.array([42, -1], pa.int32()), [np.int64(42), -1.0]),
        (pa.array([42.0, 2.5]), [42, 2.5]),
        (pa.array(['q"uote\\', "ü"], pa.large_string()), ['q"uote\\', "ü"]),
        (pa.array(["x", "y"]).dictionary_encode(), ["x", "y"]),
        (pa.array([True, False]), [True, np.bool_(False)]),
        (pa.array([when, T0], pa.timestamp("ns", tz="UTC")), [when, np.datetime64(T0.replace(tzinfo=None), "ns")]),
        (pa.array([date(2024, 1, 2), date(1999, 1, 1)]), [date(2024, 1, 2), date(1999, 1, 1)]),
    ]
    for n, (column, lookups) in enumerate(cases):
        table = f"k{n}@1"
        store.write(table, ["id"], pa.table({"id": column, "__ts": pa.array([T0, T0], TS), "v": [1, 2]}),
                    columns=["v"])
        got = store.read(table, ["id"], lookups)
        assert [row["v"] if row else None for _, row in got] == [1, 2], column.type
    assert store.read("k0@1", ["id"], ["42"]) == [(None, None)]


def test_watermark_commits_with_the_last_batch(store: online.OnlineStore, online_uri: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = T0, T0 + timedelta(days=1)
    store.write("w@1", ["id"], scores([0], T0, 0.0), columns=["score"], watermark=old)
    observer = open_online_store(online_uri)
    seen: list[tuple[int, datetime | None]] = []
    encode = online._batches

    def watched(*args: Any, **kwargs: Any) -> Iterator[Any]:
        # Each batch is encoded after the previous one committed: look at the store from outside then.
        for batch in encode(*args, **kwargs):
            visible = sum(row is not None for _, row in observer.read("w@1", ["id"], list(range(1, 31))))
            seen.append((visible, observer.watermark("w@1")))
            yield batch

    patch_batches(monkeypatch, watched)
    assert store.write("w@1", ["id"], scores(list(range(1, 31)), T0, 1.0), columns=["score"], watermark=new,
                       batch_rows=10) == 30
    assert seen == [(0, old), (10, old), (20, old)]
    assert observer.watermark("w@1") == new
    assert sum(row is not None for _, row in observer.read("w@1", ["id"], list(range(1, 31)))) == 30
    # The watermark never moves back; an empty write may move it forward on its own.
    store.write("w@1", ["id"], scores([], T0, 0.0), columns=["score"], watermark=old)
    assert store.watermark("w@1") == new
    store.write("w@1", ["id"], scores([], T0, 0.0), columns=["score"], watermark=new + timedelta(hours=1))
    assert store.stats("w@1")["watermark"] == new + timedelta(hours=1)
    observer.close()


def test_an_interrupted_write_keeps_committed_batches_and_the_old_watermark(
        store: online.OnlineStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old = T0
    store.write("i@1", ["id"], scores([0], T0, 0.0), columns=["score"], watermark=old)
    encode = online._batches

    def interrupted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for number, batch in enumerate(encode(*args, **kwargs)):
            if number == 1:
                raise RuntimeError("interrupted")
            yield batch

    patch_batches(monkeypatch, interrupted)
    with pytest.raises(RuntimeError, match="interrupted"):
        store.write("i@1", ["id"], scores(list(range(1, 31)), T0, 1.0), columns=["score"], batch_rows=10,
                    watermark=T0 + timedelta(days=1))
    present = [row is not None for _, row in store.read("i@1", ["id"], list(range(1, 31)))]
    assert present == [True] * 10 + [False] * 20
    assert store.watermark("i@1") == old


def test_a_batch_failing_in_the_backend_is_not_half_written(store: online.OnlineStore,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend rejects row 5 of batch 2: rows 0-4 of that batch must not stay behind."""
    store.write("h@1", ["id"], scores([0], T0, 0.0), columns=["score"], watermark=T0)
    encode = online._batches
    sqlite = isinstance(store, online_sqlite.SQLiteOnlineStore)

    def corrupt(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for number, batch in enumerate(encode(*args, **kwargs)):
            if number == 1:
                batch.values[5] = None if sqlite else "[not a time]"  # NOT NULL / the script's own check
            yield batch

    patch_batches(monkeypatch, corrupt)
    with pytest.raises(BackendUnavailable):
        store.write("h@1", ["id"], scores(list(range(1, 31)), T0, 1.0), columns=["score"], batch_rows=10,
                    watermark=T0 + timedelta(days=1))
    present = [row is not None for _, row in store.read("h@1", ["id"], list(range(1, 31)))]
    assert present == [True] * 10 + [False] * 20
    assert store.watermark("h@1") == T0
    assert store.stats("h@1")["rows"] == 11


def test_a_table_keeps_its_columns_and_keys(store: online.OnlineStore) -> None:
    store.write("c@1", ["id"], scores([1], T0, 1.0), columns=["score"])
    other = frame([1], [T0 + timedelta(hours=1)], score=[2.0], extra=[3.0])
    with pytest.raises(InvalidInput, match="columns never change"):
        store.write("c@1", ["id"], other, columns=["score", "extra"])
    with pytest.raises(InvalidInput, match="columns never change"):
        store.write("c@1", ["id", "extra"], other, columns=["score"])
    assert store.read("c@1", ["id"], [1]) == [(T0, {"score": 2.0})]
    with pytest.raises(InvalidInput, match="no column"):
        store.read("c@1", ["id"], [1], columns=["extra"])
    assert store.read("c@1", ["id"], [1], columns=[]) == [(T0, {})]


@pytest.mark.parametrize("name", ["../etc", "a/b", "a b", "x;DROP TABLE online_rows", 'q"', "", "-x", "a..b",
                                  "x" * 201, "ta*", "t{1}", None, 7])
def test_bad_table_names_are_refused(store: online.OnlineStore, name: Any) -> None:
    data = scores([1], T0, 1.0)
    for call in (lambda: store.write(name, ["id"], data, columns=["score"]), lambda: store.read(name, ["id"], [1]),
                 lambda: store.stats(name), lambda: store.drop(name), lambda: store.watermark(name)):
        with pytest.raises(InvalidInput, match="table name"):
            call()
    assert store.tables() == []


def test_bad_frames_write_nothing(store: online.OnlineStore) -> None:
    good = scores([1, 2], T0, 1.0)
    bad: list[tuple[Any, dict[str, Any]]] = [
        (good.drop_columns(["__ts"]), {}),
        (good.set_column(1, "__ts", pa.array([1, 2])), {}),
        (good.set_column(1, "__ts", pa.array([T0, None], TS)), {}),
        (good.set_column(0, "id", pa.array([1, None])), {}),
        (good.set_column(0, "id", pa.array([1.0, float("nan")])), {}),
        (good.append_column("blob", pa.array([b"x", b"y"])), {"columns": ["score", "blob"]}),
        (good, {"columns": ["missing"]}),
        (good, {"columns": ["score", "score"]}),
        (good, {"columns": ["id"]}),
        (good, {"columns": []}),
        (good, {"batch_rows": 0}),
        (good, {"watermark": "2024-01-01"}),
        (good.to_pandas(), {}),
    ]
    for data, options in bad:
        options = {"columns": ["score"], **options}
        with pytest.raises(InvalidInput):
            store.write("bad@1", ["id"], data, **options)
    assert store.tables() == []


@pytest.mark.parametrize("uri", ["postgresql://localhost/x", "sqlite://", "sqlite:///:memory:", "http://h:1",
                                 "", "redis://127.0.0.1:notaport", "redis://127.0.0.1:6379/notadb", "online.db"])
def test_bad_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidInput):
        open_online_store(uri)


def test_unreachable_redis_is_backend_unavailable_and_sqlite_is_unaffected(tmp_path: Any) -> None:
    started = time.monotonic()
    for uri in ("redis://:s3cret@127.0.0.1:1/0", "redis://127.0.0.1:1/0?password=s3cret"):
        dead = open_online_store(uri)
        assert "s3cret" not in repr(dead) and "s3cret" not in dead.uri
        for call in (dead.ping, lambda: dead.read("t@1", ["id"], [1]), dead.tables, lambda: dead.stats("t@1"),
                     lambda: dead.write("t@1", ["id"], scores([1], T0, 1.0), columns=["score"])):
            with pytest.raises(BackendUnavailable, match=r"cannot reach the online store at redis://") as err:
                call()
            assert "s3cret" not in str(err.value) and "***" in str(err.value)
        dead.close()
    assert time.monotonic() - started < 5
    local = open_online_store(f"sqlite:///{tmp_path}/online.db")
    local.write("t@1", ["id"], scores([1], T0, 1.0), columns=["score"])
    assert local.read("t@1", ["id"], [1]) == [(T0, {"score": 2.0})]
    local.ping()
    local.close()


def test_sqlite_path_that_cannot_be_opened(tmp_path: Any) -> None:
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(BackendUnavailable, match="cannot open the online store"):
        open_online_store(f"sqlite:///{tmp_path}/afile/online.db")


def _write_from_process(uri: str, first: int, offset: int, start: Any, done: Any) -> None:
    """One of two writers, started together: keys first..first+N-1, at T0 + offset seconds, in small batches."""
    store = open_online_store(uri)
    ids = list(range(first, first + WRITER_ROWS))
    when = T0 + timedelta(seconds=offset)
    data = frame(ids, [when] * len(ids), who=[offset] * len(ids))
    start.wait(timeout=60)
    done.put(store.write("cc@1", ["id"], data, columns=["who"], batch_rows=50))
    store.close()


WRITER_ROWS = 6_000


def test_two_processes_writing_at_once_lose_nothing(store: online.OnlineStore, online_uri: str) -> None:
    """Overlapping keys: the newer writer's rows win wherever they meet, whichever process commits last."""
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(2), context.Queue()
    half = WRITER_ROWS // 2
    workers = [context.Process(target=_write_from_process, args=(online_uri, first, offset, start, done))
               for first, offset in ((0, 1), (half, 2))]
    for worker in workers:
        worker.start()
    counts = [done.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert WRITER_ROWS + half <= sum(counts) <= 2 * WRITER_ROWS
    got = store.read("cc@1", ["id"], list(range(WRITER_ROWS + half)))
    first, second = (T0 + timedelta(seconds=1), {"who": 1}), (T0 + timedelta(seconds=2), {"who": 2})
    assert got == [first] * half + [second] * WRITER_ROWS
    assert store.stats("cc@1")["rows"] == WRITER_ROWS + half


def test_reads_from_many_threads(store: online.OnlineStore) -> None:
    store.write("th@1", ["id"], scores(list(range(100)), T0, 0.0), columns=["score"])

    def lookup(start: int) -> list[float]:
        return [row["score"] for _, row in store.read("th@1", ["id"], list(range(start, start + 10)))]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lookup, range(0, 90, 3)))
    assert results == [[float(i) for i in range(s, s + 10)] for s in range(0, 90, 3)]


def test_stats_drop_and_tables(store: online.OnlineStore) -> None:
    assert store.tables() == []
    store.write("b@2", ["id"], scores([1, 2, 3], T0, 0.0), columns=["score"], watermark=T0)
    store.write("a@1", ["id"], scores([1], T0, 0.0), columns=["score"])
    assert store.tables() == ["a@1", "b@2"]
    assert store.stats("b@2") == {"rows": 3, "watermark": T0, "columns": ["score"], "keys": ["id"]}
    assert store.stats("a@1")["watermark"] is None and store.watermark("a@1") is None
    store.drop("b@2")
    assert store.tables() == ["a@1"]
    assert store.watermark("b@2") is None
    with pytest.raises(NotFound):
        store.stats("b@2")
    with pytest.raises(NotFound):
        store.read("b@2", ["id"], [1])
    store.drop("b@2")  # dropping twice is fine
    # A dropped table may come back with other columns, and none of its old rows.
    store.write("b@2", ["id"], frame([9], [T0], other=["x"]), columns=["other"])
    assert store.read("b@2", ["id"], [1, 9]) == [(None, None), (T0, {"other": "x"})]
    assert store.stats("b@2")["rows"] == 1
    assert store.read("a@1", ["id"], [1]) == [(T0, {"score": 1.0})]
