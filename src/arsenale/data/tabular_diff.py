"""What changed between two versions of a table (CSV, TSV or Parquet): rows, columns, schema, statistics.

    diff_tables(old_path, new_path, name="train.csv") -> {
        "format": "csv",
        "rows": {"old": 1000, "new": 1040, "added": 50, "removed": 10},
        "columns": {"added": ["age"], "removed": [], "type_changed": {"id": ["int64", "string"]}},
        "schema": {"old": {"id": "int64", …}, "new": {…}},
        "stats": {"price": {"old": {"count": …, "nulls": …, "min": …, "max": …, "mean": …},
                            "new": {…}, "changed": true}, …},
    }

Rows are compared as a multiset over the columns both versions share, so a
reordered table has no added or removed rows. Tables are read with pyarrow,
which is imported only here and only when a diff needs it.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from arsenale.errors import InvalidInput

FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
MAX_ROWS_COMPARED = 2_000_000


def table_format(name: str) -> str | None:
    return FORMATS.get(Path(name).suffix.lower())


def is_tabular(name: str) -> bool:
    return table_format(name) is not None


def read_table(path: str | Path, fmt: str) -> Any:
    """A pyarrow Table from a CSV, TSV or Parquet file (whatever its file name)."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(str(path))
        import pyarrow.csv as pcsv

        parse = pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
        return pcsv.read_csv(str(path), parse_options=parse)
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
        raise InvalidInput(f"comparing tables needs pyarrow: {exc}") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends for malformed files
        raise InvalidInput(f"cannot read {fmt} table {path}: {exc}", field="path") from None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def column_stats(column: Any) -> dict[str, Any]:
    """count, nulls, and for numbers min/max/mean/std, for others min/max/distinct."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, Any] = {"count": len(column) - column.null_count, "nulls": column.null_count}
    kind = column.type
    try:
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            mm = pc.min_max(column)
            out.update(min=_clean(mm["min"].as_py()), max=_clean(mm["max"].as_py()),
                       mean=_clean(pc.mean(column).as_py()), std=_clean(pc.stddev(column, ddof=1).as_py()))
        elif pa.types.is_boolean(kind):
            out["true"] = _clean(pc.sum(column).as_py())
        else:
            out["distinct"] = pc.count_distinct(column).as_py()
            if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_temporal(kind):
                mm = pc.min_max(column)
                out.update(min=_clean(mm["min"].as_py()), max=_clean(mm["max"].as_py()))
    except Exception:  # a type pyarrow cannot summarize: keep the counts
        pass
    return out


def _row_counts(table: Any, columns: list[str]) -> Counter[tuple[Any, ...]]:
    values = [table.column(c).to_pylist() for c in columns]
    return Counter(zip(*values)) if values else Counter()


def diff_tables(old_path: str | Path, new_path: str | Path, *, name: str,
                max_rows: int = MAX_ROWS_COMPARED) -> dict[str, Any]:
    fmt = table_format(name)
    if fmt is None:
        raise InvalidInput(f"{name} is not a CSV, TSV or Parquet file", field="path")
    old, new = read_table(old_path, fmt), read_table(new_path, fmt)
    old_schema = {f.name: str(f.type) for f in old.schema}
    new_schema = {f.name: str(f.type) for f in new.schema}
    common = [c for c in old_schema if c in new_schema]
    rows: dict[str, Any] = {"old": old.num_rows, "new": new.num_rows}
    if max(old.num_rows, new.num_rows) <= max_rows:
        a, b = _row_counts(old, common), _row_counts(new, common)
        rows["added"] = sum((b - a).values())
        rows["removed"] = sum((a - b).values())
    else:
        rows["added"] = rows["removed"] = None
        rows["note"] = f"row-level comparison skipped above {max_rows:,} rows"
    stats: dict[str, Any] = {}
    for c in common:
        so, sn = column_stats(old.column(c)), column_stats(new.column(c))
        stats[c] = {"old": so, "new": sn, "changed": so != sn}
    return {
        "format": fmt,
        "rows": rows,
        "columns": {
            "added": [c for c in new_schema if c not in old_schema],
            "removed": [c for c in old_schema if c not in new_schema],
            "type_changed": {c: [old_schema[c], new_schema[c]] for c in common
                             if old_schema[c] != new_schema[c]},
        },
        "schema": {"old": old_schema, "new": new_schema},
        "stats": stats,
    }
