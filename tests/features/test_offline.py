"""Point-in-time retrieval: values as of each entity row's time, never from its future, no row lost.

Small hand-made cases pin each rule of the contract (exact-time events, TTL and window boundaries, ties,
empty windows, row order); a property test compares `retrieve` with a brute-force pandas reference.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arsenale.errors import InvalidInput
from arsenale.features.definitions import Entity, FeatureView, OnDemandFeature, on_demand_feature
from arsenale.features.offline import ViewRequest, retrieve

customer = Entity("customer", join_keys=["customer_id"])
T0 = pd.Timestamp("2024-03-01 12:00:00")
US = pd.Timedelta(microseconds=1)
DAY = pd.Timedelta(days=1)


def at(*offsets: pd.Timedelta) -> list[pd.Timestamp]:
    return [T0 + o for o in offsets]


def txn_view(**over: Any) -> FeatureView:
    kw: dict[str, Any] = {"entities": [customer], "source": "x.parquet", "timestamp": "ts",
                          "features": {"amount": "amount", "amount_7d": "sum(amount) over 7d"}}
    kw.update(over)
    return FeatureView("txn", **kw)


def events(**columns: Any) -> pa.Table:
    return pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)


def entity_rows(ids: list[Any], times: list[Any], **extra: Any) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ids, "event_timestamp": times, **extra})


def one(view: FeatureView, source: Any, entity_df: Any, features: tuple[str, ...], **kw: Any) -> pd.DataFrame:
    return retrieve(entity_df, [ViewRequest(view, source, features)], **kw)


def same(actual: pd.Series, expected: list[Any]) -> bool:
    a = pd.Series(actual).to_numpy(dtype=object)
    return len(a) == len(expected) and all((pd.isna(x) and pd.isna(y)) or x == pytest.approx(y)
                                           for x, y in zip(a, expected))


# ---------------------------------------------------------------------------------------- plain columns


def test_value_is_the_latest_event_at_or_before_the_row_time_never_a_later_one() -> None:
    src = events(customer_id=[1, 1, 1], ts=at(-DAY, pd.Timedelta(0), US), amount=[1.0, 2.0, 3.0])
    ent = entity_rows([1, 1, 1, 1], at(-DAY - US, -DAY, -US, pd.Timedelta(0)))
    out = one(txn_view(), src, ent, ("amount",))
    # before any event: null; exactly at an event: that event; 1 µs before the next: still the old one
    assert same(out["amount"], [None, 1.0, 1.0, 2.0])


def test_ttl_keeps_an_event_exactly_ttl_old_and_drops_one_a_microsecond_older() -> None:
    src = events(customer_id=[1, 2], ts=at(-2 * DAY, -2 * DAY - US), amount=[1.0, 2.0])
    ent = entity_rows([1, 2], at(pd.Timedelta(0), pd.Timedelta(0)))
    assert same(one(txn_view(ttl="2d"), src, ent, ("amount",))["amount"], [1.0, None])
    assert same(one(txn_view(), src, ent, ("amount",))["amount"], [1.0, 2.0])  # no ttl: no limit


def test_ttl_applies_to_columns_but_not_to_aggregations() -> None:
    view = txn_view(ttl="1d", features={"amount": "amount", "amount_7d": "sum(amount) over 7d"})
    src = events(customer_id=[1], ts=at(-3 * DAY), amount=[5.0])
    out = one(view, src, entity_rows([1], at(pd.Timedelta(0))), ("amount", "amount_7d"))
    assert same(out["amount"], [None]) and same(out["amount_7d"], [5.0])


@pytest.mark.parametrize("threads", [1, 2])
def test_ties_go_to_the_greatest_created_time_whatever_the_row_order(threads: int) -> None:
    n = 400
    rng = np.random.default_rng(threads)
    created = rng.permutation(n)
    src = pd.DataFrame({"customer_id": np.arange(n) % 4, "ts": T0, "created": T0 + pd.to_timedelta(created, "s"),
                        "amount": created.astype(float)})
    view = txn_view(created_timestamp="created")
    ent = entity_rows([0, 1, 2, 3], [T0] * 4)
    expected = [float(src.amount[src.customer_id == k].max()) for k in range(4)]
    for seed in range(3):
        shuffled = src.sample(frac=1, random_state=seed).reset_index(drop=True)
        out = one(view, pa.Table.from_pandas(shuffled, preserve_index=False), ent, ("amount",), threads=threads)
        assert same(out["amount"], expected)


@pytest.mark.parametrize("threads", [1, 2])
def test_remaining_ties_go_to_the_last_source_row(threads: int) -> None:
    n = 100_000  # enough rows that DuckDB's own order among equal keys is not the source order
    rng = np.random.default_rng(7)
    for chunks in (1, 8):
        order = rng.permutation(n).astype(float)
        src = pa.table({"customer_id": np.arange(n) % 3, "ts": pa.array([T0] * n), "amount": order})
        src = pa.concat_tables([src.slice(i * n // chunks, n // chunks) for i in range(chunks)])
        out = one(txn_view(), src, entity_rows([0, 1, 2], [T0 + DAY] * 3), ("amount",), threads=threads)
        last = [np.flatnonzero(np.arange(n) % 3 == k)[-1] for k in range(3)]  # the last row of each key
        assert same(out["amount"], [order[i] for i in last])


def test_a_null_created_time_loses_a_tie_and_the_latest_value_counts_even_when_null() -> None:
    src = events(customer_id=[1, 1, 2, 2], ts=[T0] * 4, created=[T0, None, T0, T0 + US],
                 amount=[1.0, 2.0, 3.0, None])
    out = one(txn_view(created_timestamp="created"), src, entity_rows([1, 2], [T0, T0]), ("amount",))
    assert same(out["amount"], [1.0, None])  # customer 2's latest row holds a null: no fallback to 3.0


# ------------------------------------------------------------------------------------------ aggregations


def test_window_holds_events_after_t_minus_w_up_to_and_including_t() -> None:
    offsets = [-7 * DAY, -7 * DAY + US, -DAY, pd.Timedelta(0), US]
    src = events(customer_id=[1] * 5, ts=at(*offsets), amount=[1.0, 10.0, 100.0, 1000.0, 10000.0])
    out = one(txn_view(), src, entity_rows([1], [T0]), ("amount_7d",))
    assert same(out["amount_7d"], [1110.0])  # t - 7d excluded, t - 7d + 1 µs and t included, t + 1 µs not


def test_every_aggregation_skips_nulls_and_empty_windows_give_null_or_zero() -> None:
    view = txn_view(features={"s": "sum(amount) over 1d", "c": "count(amount) over 1d", "n": "count(*) over 1d",
                              "a": "avg(amount) over 1d", "lo": "min(amount) over 1d", "hi": "max(amount) over 1d",
                              "i": "sum(items) over 1d"})
    src = events(customer_id=[1, 1, 1, 2], ts=at(-3 * US, -2 * US, -US, -2 * DAY),
                 amount=[2.0, None, 6.0, 1.0], items=[1, 2, 3, 4])
    out = one(view, src, entity_rows([1, 2, 3], [T0] * 3), ("s", "c", "n", "a", "lo", "hi", "i"))
    assert same(out["s"], [8.0, None, None]) and same(out["a"], [4.0, None, None])
    assert same(out["c"], [2, 0, 0]) and same(out["n"], [3, 0, 0]) and out["n"].dtype == np.int64
    assert same(out["lo"], [2.0, None, None]) and same(out["hi"], [6.0, None, None])
    assert same(out["i"], [6, None, None])


def test_windows_are_exact_at_each_rows_own_time_not_bucketed() -> None:
    src = events(customer_id=[1] * 4, ts=at(pd.Timedelta(hours=1), pd.Timedelta(hours=5), pd.Timedelta(hours=9),
                                            pd.Timedelta(hours=30)), amount=[1.0, 2.0, 4.0, 8.0])
    view = txn_view(features={"mx": "max(amount) over 6h", "n": "count(*) over 6h"})
    times = at(pd.Timedelta(hours=5), pd.Timedelta(hours=7), pd.Timedelta(hours=11), pd.Timedelta(hours=15, minutes=1))
    out = one(view, src, entity_rows([1] * 4, times), ("mx", "n"))
    assert same(out["mx"], [2.0, 2.0, 4.0, None]) and same(out["n"], [2, 1, 1, 0])  # 7h: 1h is exactly t - 6h


# ------------------------------------------------------------------------------------------- entity rows


def test_every_row_comes_back_in_order_with_its_columns_and_index_unchanged() -> None:
    src = events(customer_id=[1, 2], ts=at(-DAY, -DAY), amount=[1.0, 2.0])
    ent = entity_rows([2, 9, 1, 2, 2], at(*[pd.Timedelta(0)] * 5), label=["a", "b", "c", "d", "e"])
    ent.index = pd.Index([50, 40, 30, 20, 10])
    before = ent.copy()
    out = one(txn_view(), src, ent, ("amount", "amount_7d"))
    pd.testing.assert_frame_equal(ent, before)  # the caller's frame is not modified
    pd.testing.assert_frame_equal(out[list(ent.columns)], before)
    assert list(out.columns) == ["customer_id", "event_timestamp", "label", "amount", "amount_7d"]
    assert same(out["amount"], [2.0, None, 1.0, 2.0, 2.0]) and same(out["amount_7d"], [2.0, None, 1.0, 2.0, 2.0])


def test_an_empty_entity_df_gives_empty_feature_columns() -> None:
    src = events(customer_id=[1], ts=at(pd.Timedelta(0)), amount=[1.0])
    out = one(txn_view(), src, entity_rows([], []).astype({"customer_id": "int64",
                                                            "event_timestamp": "datetime64[ns]"}), ("amount",))
    assert len(out) == 0 and list(out.columns) == ["customer_id", "event_timestamp", "amount"]


def test_multi_key_entities_match_on_every_key() -> None:
    merchant = Entity("merchant", join_keys=["merchant"])
    view = FeatureView("pair", entities=[customer, merchant], source="x", timestamp="ts",
                       features={"amount": "amount", "n": "count(*) over 1d"})
    src = events(customer_id=[1, 1, 2], merchant=["a", "b", "a"], ts=at(-US, -US, -US), amount=[1.0, 2.0, 3.0])
    ent = entity_rows([1, 1, 2, 2], [T0] * 4, merchant=["b", "a", "a", "b"])
    out = one(view, src, ent, ("amount", "n"))
    assert same(out["amount"], [2.0, 1.0, 3.0, None]) and same(out["n"], [1, 1, 1, 0])


def test_two_views_in_one_call_with_renamed_outputs() -> None:
    profile = FeatureView("profile", entities=[customer], source="x", timestamp="updated", features=["segment"])
    txn = events(customer_id=[1, 2], ts=at(-US, -US), amount=[1.0, 2.0])
    prof = events(customer_id=[1, 1], updated=at(-DAY, US), segment=["gold", "platinum"])
    out = retrieve(entity_rows([1, 2], [T0, T0]),
                   [ViewRequest(txn_view(), txn, ("amount_7d", "amount"), output_names=("t7", "last")),
                    ViewRequest(profile, prof, ("segment",))])
    assert list(out.columns)[2:] == ["t7", "last", "segment"]
    assert same(out["t7"], [1.0, 2.0]) and same(out["segment"], ["gold", None])


# ---------------------------------------------------------------------------------------------- on demand


@on_demand_feature(["amount", "txn:amount_7d"], name="share")
def share_of_week(df: pd.DataFrame) -> pd.Series:
    assert list(df.columns) == ["amount", "amount_7d"]
    return df["amount"] / df["amount_7d"]


def test_on_demand_features_see_request_columns_and_retrieved_features_by_bare_name() -> None:
    src = events(customer_id=[1, 1], ts=at(-DAY, -US), amount=[1.0, 3.0])
    ent = entity_rows([1, 2], [T0, T0], amount=[2.0, 5.0])
    out = retrieve(ent, [ViewRequest(txn_view(), src, ("amount_7d",), output_names=("week",))], [share_of_week])
    assert same(out["share"], [0.5, None]) and list(out.columns)[-2:] == ["week", "share"]


def test_an_on_demand_result_of_the_wrong_length_is_refused() -> None:
    @on_demand_feature(["amount"], name="short")
    def short(df: pd.DataFrame) -> pd.Series:
        return df["amount"].iloc[:1]

    src = events(customer_id=[1], ts=at(-US), amount=[1.0])
    with pytest.raises(InvalidInput) as err:
        retrieve(entity_rows([1, 2], [T0, T0], amount=[1.0, 2.0]), [ViewRequest(txn_view(), src, ("amount_7d",))],
                 [short])
    assert err.value.field == "on_demand.short"


@pytest.mark.parametrize("inputs", [["missing"], ["txn:amount"], ["other:amount_7d"]])
def test_an_on_demand_input_must_be_a_request_column_or_a_retrieved_feature(inputs: list[str]) -> None:
    feature = OnDemandFeature(name="f", inputs=tuple(inputs), function="m:f", source_digest="0")
    src = events(customer_id=[1], ts=at(-US), amount=[1.0])
    with pytest.raises(InvalidInput) as err:
        retrieve(entity_rows([1], [T0]), [ViewRequest(txn_view(), src, ("amount_7d",))], [feature])
    assert err.value.field == "on_demand.f" and inputs[0].split(":")[-1] in err.value.message


# --------------------------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("entity_ts", [
    pd.Series(at(pd.Timedelta(0))).astype("datetime64[s]"),
    pd.Series(at(pd.Timedelta(0))).astype("datetime64[ms]"),
    pd.Series(at(pd.Timedelta(0))).dt.tz_localize("UTC").dt.tz_convert("America/New_York"),
    pd.Series(at(pd.Timedelta(0))).astype("datetime64[ns]") + pd.Timedelta(nanoseconds=999),  # same microsecond
    pd.Series(["2024-03-01T12:00:00"]),
    pd.Series(["2024-03-01T13:00:00+01:00"], dtype=object),
    pd.Series([dt.datetime(2024, 3, 1, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))], dtype=object),
], ids=["s", "ms", "new-york", "ns", "iso", "iso-offset", "datetime-objects"])
@pytest.mark.parametrize("source_ts", [
    pa.array([T0.value], pa.timestamp("ns")),
    pa.array([T0.value // 1000], pa.timestamp("us", tz="UTC")),
    pa.array([T0.value + 999], pa.timestamp("ns", tz="Asia/Tokyo")),  # floored to t
    pa.array([T0.value // 10**9], pa.timestamp("s")),
    pa.array(["2024-03-01 14:00:00+02"]),
], ids=["ns", "us-utc", "ns-tokyo", "s", "iso-offset"])
def test_any_unit_any_zone_any_iso_string_compares_as_the_same_instant(entity_ts: pd.Series,
                                                                       source_ts: pa.Array) -> None:
    src = pa.table({"customer_id": [1, 1], "ts": pa.concat_arrays([source_ts, source_ts]), "amount": [1.0, 2.0]})
    ent = pd.DataFrame({"customer_id": [1], "event_timestamp": entity_ts})
    out = one(txn_view(), src, ent, ("amount", "amount_7d"))
    assert same(out["amount"], [2.0]) and same(out["amount_7d"], [3.0])  # the event at exactly t is known
    pd.testing.assert_series_equal(out["event_timestamp"], ent["event_timestamp"])  # returned as given


def test_an_event_one_microsecond_after_the_row_is_not_known() -> None:
    src = events(customer_id=[1], ts=at(US), amount=[1.0])
    ent = entity_rows([1], pd.Series(at(pd.Timedelta(0))).dt.tz_localize("UTC"))
    assert same(one(txn_view(), src, ent, ("amount",))["amount"], [None])


def test_sub_microsecond_digits_are_dropped_not_rounded() -> None:
    src = events(customer_id=[1, 2], ts=at(US, pd.Timedelta(0)), amount=[1.0, 2.0])
    ent = entity_rows([1, 2], pd.Series(at(pd.Timedelta(0), pd.Timedelta(0))) + pd.Timedelta(nanoseconds=999))
    assert same(one(txn_view(), src, ent, ("amount",))["amount"], [None, 2.0])


def test_a_date_column_is_midnight_utc() -> None:
    src = pa.table({"customer_id": [1], "ts": pa.array([dt.date(2024, 3, 1)]), "amount": [1.0]})
    out = one(txn_view(), src, entity_rows([1, 1], ["2024-02-29T23:59:59Z", "2024-03-01T00:00:00+00:00"]), ("amount",))
    assert same(out["amount"], [None, 1.0])


@pytest.mark.parametrize("values", [
    ["2024-03-01T12:00:00", "2024-03-01T12:00:00+00:00"],
    [dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)],
])
def test_naive_and_aware_times_mixed_in_one_entity_column_are_refused(values: list[Any]) -> None:
    src = events(customer_id=[1], ts=at(-US), amount=[1.0])
    with pytest.raises(InvalidInput) as err:
        one(txn_view(), src, entity_rows([1, 1], pd.Series(values, dtype=object)), ("amount",))
    assert err.value.field == "entity_df.event_timestamp" and "time zone" in err.value.message


def test_naive_and_aware_strings_mixed_in_a_source_column_are_refused() -> None:
    src = pa.table({"customer_id": [1, 1], "ts": ["2024-03-01 10:00:00", "2024-03-01 10:00:00Z"], "amount": [1., 2.]})
    with pytest.raises(InvalidInput) as err:
        one(txn_view(), src, entity_rows([1], [T0]), ("amount",))
    assert err.value.field == "txn.ts"


def test_source_rows_with_a_null_time_or_key_are_never_matched() -> None:
    src = pa.table({"customer_id": pa.array([1, None, 1], pa.int64()),
                    "ts": pa.array([T0.value // 1000, T0.value // 1000, None], pa.timestamp("us")),
                    "amount": [1.0, 2.0, 3.0]})
    out = one(txn_view(), src, entity_rows([1], [T0 + DAY]), ("amount", "amount_7d"))
    assert same(out["amount"], [1.0]) and same(out["amount_7d"], [1.0])


# -------------------------------------------------------------------------------------- keys and sources


def test_integer_keys_of_different_widths_join_and_strings_never_equal_numbers() -> None:
    src = pa.table({"customer_id": pa.array([1, 2], pa.int32()), "ts": pa.array([T0, T0]), "amount": [1.0, 2.0]})
    out = one(txn_view(), src, entity_rows(pd.array([2, 1], dtype="Int64"), [T0, T0]), ("amount",))
    assert same(out["amount"], [2.0, 1.0])
    with pytest.raises(InvalidInput) as err:
        one(txn_view(), src, entity_rows(["1", "2"], [T0, T0]), ("amount",))
    assert err.value.field == "entity_df.customer_id"


def test_string_keys_join_and_an_arrow_entity_table_is_accepted() -> None:
    src = events(customer_id=["a", "b"], ts=at(-US, -US), amount=[1.0, 2.0])
    ent = pa.table({"customer_id": pa.array(["b", "z"]).dictionary_encode(), "event_timestamp": pa.array([T0, T0])})
    out = one(txn_view(), src, ent, ("amount",))
    assert isinstance(out, pd.DataFrame) and same(out["amount"], [2.0, None])


def test_parquet_files_folders_and_lists_with_file_order_as_the_last_tie_break(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name, amount in [("d/b.parquet", 2.0), ("d/a.parquet", 1.0), ("c.parquet", 3.0)]:
        pq.write_table(events(customer_id=[1], ts=at(-US), amount=[amount]), tmp_path / name)
    ent = entity_rows([1], [T0])
    assert same(one(txn_view(), str(tmp_path / "d"), ent, ("amount", "amount_7d"))["amount"], [2.0])
    out = one(txn_view(), [str(tmp_path / "d"), str(tmp_path / "c.parquet")], ent, ("amount", "amount_7d"))
    assert same(out["amount"], [3.0]) and same(out["amount_7d"], [6.0])
    out = one(txn_view(), [tmp_path / "c.parquet", tmp_path / "d" / "a.parquet"], ent, ("amount",))
    assert same(out["amount"], [1.0])


def test_spilling_settings_are_applied_and_a_bad_memory_limit_is_refused() -> None:
    src = events(customer_id=[1], ts=at(-US), amount=[1.0])
    out = one(txn_view(), src, entity_rows([1], [T0]), ("amount",), memory_limit="200MB", threads=1)
    assert same(out["amount"], [1.0])
    with pytest.raises(InvalidInput) as err:
        one(txn_view(), src, entity_rows([1], [T0]), ("amount",), memory_limit="lots")
    assert err.value.field == "memory_limit"


# ---------------------------------------------------------------------------------------------- bad input


SRC = events(customer_id=[1], ts=at(-US), amount=[1.0])


def refused(field: str, *words: str, **call: Any) -> None:
    kw: dict[str, Any] = {"entity_df": entity_rows([1, 2], [T0, T0]),
                          "requests": [ViewRequest(txn_view(), SRC, ("amount",))]}
    kw.update(call)
    with pytest.raises(InvalidInput) as err:
        retrieve(**kw)
    assert err.value.field == field, err.value.message
    for word in words:
        assert word in err.value.message


def test_bad_entity_frames_are_refused_naming_the_column() -> None:
    refused("entity_df", "DataFrame", entity_df=[{"customer_id": 1}])
    refused("entity_df.event_timestamp", "event_timestamp", entity_df=pd.DataFrame({"customer_id": [1]}))
    refused("entity_df.when", "when", timestamp_column="when")
    refused("entity_df.customer_id", "customer_id", "'txn'", entity_df=pd.DataFrame({"event_timestamp": [T0]}))
    refused("entity_df.event_timestamp", "datetimes", entity_df=entity_rows([1], [5]))
    refused("entity_df.event_timestamp", "not timestamps", entity_df=entity_rows([1], ["yesterday"]))


def test_null_keys_and_times_are_refused_with_the_count_and_first_row() -> None:
    refused("entity_df.customer_id", "2 rows", "row 1", entity_df=entity_rows([1, None, None], [T0] * 3))
    frame = entity_rows([1, 2, 3], [T0, None, T0])
    frame.index = ["x", "y", "z"]
    refused("entity_df.event_timestamp", "1 rows", "row 1", "'y'", entity_df=frame)


def test_unknown_features_missing_source_columns_and_bad_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        ViewRequest(txn_view(), SRC, ("nope",))
    assert "nope" in err.value.message and err.value.field == "features"
    refused("txn.amount", "amount", requests=[ViewRequest(txn_view(), SRC.drop(["amount"]), ("amount",))])
    refused("txn.ts", "ts", requests=[ViewRequest(txn_view(), SRC.drop(["ts"]), ("amount_7d",))])
    refused("txn.customer_id", requests=[ViewRequest(txn_view(), SRC.drop(["customer_id"]), ("amount",))])
    refused("txn.source", "no Parquet", requests=[ViewRequest(txn_view(), str(tmp_path / "none.parquet"),
                                                              ("amount",))])
    (tmp_path / "bad.parquet").write_text("not parquet")
    refused("txn.source", requests=[ViewRequest(txn_view(), str(tmp_path / "bad.parquet"), ("amount",))])
    words = events(customer_id=[1], ts=at(-US), amount=["many"])
    refused("txn.amount", "numeric", requests=[ViewRequest(txn_view(), words, ("amount_7d",))])


def test_output_names_must_be_unique_and_new() -> None:
    refused("output_names.customer_id", "entity_df",
            requests=[ViewRequest(txn_view(), SRC, ("amount",), output_names=("customer_id",))])
    refused("output_names.amount", "twice", requests=[ViewRequest(txn_view(), SRC, ("amount",)),
                                                      ViewRequest(txn_view(), SRC, ("amount",))])
    refused("on_demand.share", "twice", on_demand=[share_of_week],
            requests=[ViewRequest(txn_view(), SRC, ("amount_7d", "amount"), output_names=("amount_7d", "share"))])
    with pytest.raises(InvalidInput):
        ViewRequest(txn_view(), SRC, ("amount",), output_names=("a", "b"))
    refused("threads", threads=0)


# --------------------------------------------------------------------------------------- property test


WINDOW_MIN, TTL_MIN = 3, 4
PROPERTY_VIEW = FeatureView(
    "prop", entities=[customer], source="x", timestamp="ts", created_timestamp="created", ttl=f"{TTL_MIN}m",
    features={"v": "v", "v_sum": f"sum(v) over {WINDOW_MIN}m", "v_cnt": f"count(v) over {WINDOW_MIN}m",
              "n": f"count(*) over {WINDOW_MIN}m", "v_avg": f"avg(v) over {WINDOW_MIN}m",
              "v_min": f"min(v) over {WINDOW_MIN}m", "v_max": f"max(v) over {WINDOW_MIN}m"})


def reference(entity: pd.DataFrame, source: pd.DataFrame) -> pd.DataFrame:
    """The contract, row by row, in plain pandas."""
    ttl, window = pd.Timedelta(minutes=TTL_MIN), pd.Timedelta(minutes=WINDOW_MIN)
    src = source.assign(seq=np.arange(len(source)), cr=source.created.fillna(pd.Timestamp.min))
    rows = []
    for key, t in zip(entity.customer_id, entity.event_timestamp):
        known = src[(src.customer_id == key) & (src.ts <= t)]
        latest = known.sort_values(["ts", "cr", "seq"]).tail(1)
        fresh = len(latest) and latest.ts.iloc[0] >= t - ttl
        v = known[known.ts > t - window].v
        rows.append({"v": latest.v.iloc[0] if fresh else None, "v_sum": v.sum() if v.notna().any() else None,
                     "v_cnt": int(v.notna().sum()), "n": len(v), "v_avg": v.mean() if v.notna().any() else None,
                     "v_min": v.min() if v.notna().any() else None, "v_max": v.max() if v.notna().any() else None})
    return pd.DataFrame(rows, columns=list(PROPERTY_VIEW.feature_names))


def minutes(n: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=n)


source_rows = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 8), st.one_of(st.none(), st.integers(0, 2)),
                                 st.one_of(st.none(), st.integers(-3, 3).map(float))), max_size=30)
entity_list = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10)), min_size=1, max_size=15)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source_rows, entity_list, st.sampled_from([1, 2]))
def test_retrieve_agrees_with_a_brute_force_reference(rows: list[tuple[Any, ...]], ents: list[tuple[int, int]],
                                                      threads: int) -> None:
    source = pd.DataFrame({"customer_id": pd.Series([r[0] for r in rows], dtype="int64"),
                           "ts": pd.Series([minutes(r[1]) for r in rows], dtype="datetime64[ns]"),
                           "created": pd.Series([None if r[2] is None else minutes(r[2]) for r in rows],
                                                dtype="datetime64[ns]"),
                           "v": pd.Series([r[3] for r in rows], dtype="float64")})
    entity = entity_rows([e[0] for e in ents], pd.Series([minutes(e[1]) for e in ents], dtype="datetime64[ns]"))
    features = tuple(PROPERTY_VIEW.feature_names)
    out = retrieve(entity, [ViewRequest(PROPERTY_VIEW, pa.Table.from_pandas(source, preserve_index=False),
                                        features)], threads=threads)
    expected = reference(entity, source)
    for name in features:
        assert same(out[name], list(expected[name])), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source_rows, st.integers(0, 10), st.one_of(st.none(), st.integers(0, 10)), st.booleans())
def test_as_of_is_retrieve_at_one_instant(rows: list[tuple[Any, ...]], end_min: int, since_min: int | None,
                                          subset: bool) -> None:
    """Materialization's grouped pass gives, for every entity it returns, what `retrieve` gives a row at `end`,
    and it returns every entity whose values may differ from those at `since`."""
    from arsenale.features.offline import as_of

    source = pd.DataFrame({"customer_id": pd.Series([r[0] for r in rows], dtype="int64"),
                           "ts": pd.Series([minutes(r[1]) for r in rows], dtype="datetime64[ns]"),
                           "created": pd.Series([None if r[2] is None else minutes(r[2]) for r in rows],
                                                dtype="datetime64[ns]"),
                           "v": pd.Series([r[3] for r in rows], dtype="float64")})
    table = pa.Table.from_pandas(source, preserve_index=False)
    end = minutes(end_min).tz_localize("UTC").to_pydatetime()
    since = None if since_min is None else minutes(since_min).tz_localize("UTC").to_pydatetime()
    only = pa.table({"customer_id": pa.array([0, 2], pa.int32())}) if subset else None
    got = as_of(PROPERTY_VIEW, table, end, since=since, entities=only).to_pandas()
    ids = [0, 1, 2]
    features = tuple(PROPERTY_VIEW.feature_names)
    expected = retrieve(entity_rows(ids, [pd.Timestamp(end)] * 3), [ViewRequest(PROPERTY_VIEW, table, features)])
    for i in ids:
        known = source[(source.customer_id == i) & (source.ts <= pd.Timestamp(end).tz_localize(None))]
        lo = None if since is None else pd.Timestamp(since).tz_localize(None) - pd.Timedelta(minutes=WINDOW_MIN)
        changed = known if lo is None else known[known.ts > lo]
        wanted = len(changed) > 0 and (not subset or i in (0, 2))
        row = got[got.customer_id == i]
        assert len(row) == int(wanted), (i, got)
        if wanted:
            assert row["__ts"].iloc[0] == known.ts.max().tz_localize("UTC")
            for name in features:
                assert same(row[name], [expected[name].iloc[i]]), name


def test_views_over_one_source_are_retrieved_together_with_the_same_values() -> None:
    src = events(customer_id=[1, 1, 2, 2], ts=at(-2 * DAY, -DAY, -DAY, DAY), amount=[1.0, 2.0, 5.0, 7.0],
                 fee=[0.1, 0.2, 0.5, 0.7])
    a = txn_view()
    b = FeatureView("fees", entities=[customer], source="x.parquet", timestamp="ts",
                    features={"fee": "fee", "fee_3d": "max(fee) over 3d", "amount": "amount"})
    rows = entity_rows([1, 2, 3], at(0 * DAY, 0 * DAY, 0 * DAY))
    together = retrieve(rows, [ViewRequest(a, src, ("amount", "amount_7d")),
                               ViewRequest(b, src, ("fee", "fee_3d", "amount"), ("fee", "fee_3d", "fees_amount"))])
    apart_a = one(a, src, rows, ("amount", "amount_7d"))
    apart_b = one(b, src, rows, ("fee", "fee_3d"))
    assert list(together.columns) == ["customer_id", "event_timestamp", "amount", "amount_7d", "fee", "fee_3d",
                                      "fees_amount"]
    for col, expected in [("amount", apart_a["amount"]), ("amount_7d", apart_a["amount_7d"]),
                          ("fee", apart_b["fee"]), ("fee_3d", apart_b["fee_3d"]), ("fees_amount", apart_a["amount"])]:
        assert same(together[col], list(expected)), col
    assert same(together["amount"], [2.0, 5.0, None])
