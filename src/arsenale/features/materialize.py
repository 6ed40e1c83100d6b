"""Which entities a materialization must refresh, and the time arithmetic it needs.

A plain feature changes only when its entity has a new event; a windowed aggregation also changes when
an event leaves its window. So after a watermark `lo`, the entities to recompute as of `end` are those
with an event in (lo - longest window, end]; their latest event time there is the row's event time in
the online store (what a read compares with the view's TTL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arsenale.errors import InvalidInput
from arsenale.features.definitions import FeatureView

__all__ = ["changed_entities", "utc_micros"]

ENTITY_TS = "event_timestamp"
UTC_US = pa.timestamp("us", tz="UTC")


def utc_micros(column: pa.ChunkedArray | pa.Array, *, field: str) -> pa.ChunkedArray | pa.Array:
    """Any timestamp column (naive = UTC, any unit, ISO strings) as timestamp[us, UTC]."""
    kind = column.type
    try:
        if pa.types.is_timestamp(kind):
            return column.cast(pa.timestamp("us", tz=kind.tz or "UTC")).cast(UTC_US)
        if pa.types.is_date(kind):
            return column.cast(pa.timestamp("us")).cast(UTC_US)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            import pandas as pd

            parsed = pd.to_datetime(column.to_pandas(), utc=True, format="ISO8601")
            return pa.array(parsed, type=UTC_US)
    except (pa.ArrowInvalid, ValueError, TypeError) as exc:
        raise InvalidInput(f"{field}: cannot read the timestamps: {exc}", field=field) from None
    raise InvalidInput(f"{field} must hold timestamps; it is {kind}", field=field)


def _read(source: pa.Table | str | Sequence[str], columns: list[str]) -> pa.Table:
    if isinstance(source, pa.Table):
        return source.select(columns)
    try:
        return pq.read_table(source, columns=columns)
    except (pa.ArrowInvalid, KeyError) as exc:
        raise InvalidInput(f"source {source}: {exc}", field="source") from None


def _subset(entities: Any, keys: list[str], schema: pa.Schema) -> pa.Table:
    if isinstance(entities, pa.Table):
        table = entities
    elif hasattr(entities, "columns") and hasattr(entities, "to_dict"):  # a DataFrame
        table = pa.Table.from_pandas(entities, preserve_index=False)
    elif isinstance(entities, Sequence) and not isinstance(entities, (str, bytes)) \
            and all(isinstance(e, Mapping) for e in entities) and entities:
        table = pa.Table.from_pylist([dict(e) for e in entities])
    else:
        raise InvalidInput("entities must be a DataFrame or a list of dicts of join keys", field="entities")
    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise InvalidInput(f"entities lack the join key(s) {missing}", field="entities")
    try:
        return pa.table({k: table.column(k).cast(schema.field(k).type) for k in keys})
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"entities: join keys of the wrong type: {exc}", field="entities") from None


def changed_entities(view: FeatureView, source: pa.Table | str | Sequence[str], lo: datetime | None,
                     end: datetime, entities: Any = None) -> pa.Table:
    """Join keys, `__ts` (their latest event up to `end`) and `event_timestamp` = `end`, one row per entity
    whose values may differ between `lo` and `end`."""
    keys = list(view.join_keys)
    table = _read(source, [*keys, view.timestamp])
    ts = utc_micros(table.column(view.timestamp), field=f"{view.name}.{view.timestamp}")
    window = max((f.aggregation.window_seconds for f in view.features if f.aggregation), default=0.0)
    mask = pc.less_equal(ts, pa.scalar(end, UTC_US))
    if lo is not None:
        mask = pc.and_(mask, pc.greater(ts, pa.scalar(lo - timedelta(seconds=window), UTC_US)))
    for k in keys:
        mask = pc.and_(mask, pc.is_valid(table.column(k)))
    events = pa.table({**{k: table.column(k) for k in keys}, "__ts": ts}).filter(mask)
    if entities is not None:
        events = events.join(_subset(entities, keys, table.schema), keys=keys, join_type="inner")
    grouped = events.group_by(keys).aggregate([("__ts", "max")])
    latest = pa.table({**{k: grouped.column(k) for k in keys}, "__ts": grouped.column("__ts_max")})
    return latest.append_column(ENTITY_TS, pa.nulls(latest.num_rows, UTC_US).fill_null(pa.scalar(end, UTC_US)))
