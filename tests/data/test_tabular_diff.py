"""Table-aware diffs of CSV and Parquet versions: rows, columns, schema and statistics."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsenale.data.tabular_diff import diff_tables
from arsenale.data.workspace import DataWorkspace
from arsenale.errors import InvalidInput
from tests.data.conftest import write_tree

OLD = b"id,price,city\n1,10.0,rome\n2,20.0,milan\n3,30.0,turin\n"
NEW = b"id,price,country\n1,10.0,it\n3,30.0,it\n4,45.5,fr\n5,,fr\n"


def test_csv_diff_counts_rows_columns_and_statistics(tmp_path: Path) -> None:
    (tmp_path / "old.csv").write_bytes(OLD)
    (tmp_path / "new.csv").write_bytes(NEW)
    d = diff_tables(tmp_path / "old.csv", tmp_path / "new.csv", name="t.csv")
    assert d["rows"] == {"old": 3, "new": 4, "added": 2, "removed": 1}
    assert d["columns"] == {"added": ["country"], "removed": ["city"], "type_changed": {}}
    assert d["schema"]["old"] == {"id": "int64", "price": "double", "city": "string"}
    price = d["stats"]["price"]
    assert price["changed"] and price["old"]["mean"] == 20.0 and price["new"]["nulls"] == 1
    assert price["new"]["max"] == 45.5 and not d["stats"]["id"]["old"]["nulls"]


def test_parquet_diff_sees_type_changes(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2, 3], "score": [0.5, 0.7, 0.9]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": ["1", "2", "3"], "score": [0.5, 0.7, 0.9]}), tmp_path / "b.parquet")
    d = diff_tables(tmp_path / "a.parquet", tmp_path / "b.parquet", name="x.parquet")
    assert d["columns"]["type_changed"] == {"id": ["int64", "string"]}
    assert d["rows"]["old"] == d["rows"]["new"] == 3 and not d["stats"]["score"]["changed"]


def test_malformed_table_is_invalid_input(tmp_path: Path) -> None:
    (tmp_path / "a.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidInput, match="cannot read"):
        diff_tables(tmp_path / "a.parquet", tmp_path / "a.parquet", name="a.parquet")


def test_workspace_diff_between_two_manifests(ws: DataWorkspace, project: Path) -> None:
    write_tree(project / "data", {"t.csv": OLD, "same.txt": b"x", "gone.txt": b"bye"})
    ws.add(project / "data")
    (project / "v1.ars").write_bytes((project / "data.ars").read_bytes())
    (project / "data" / "gone.txt").unlink()
    write_tree(project / "data", {"t.csv": NEW, "new.txt": b"hi"})
    d = ws.diff(project / "v1.ars", project / "data")  # the manifest against the working copy
    assert [c.path for c in d.added] == ["new.txt"] and [c.path for c in d.removed] == ["gone.txt"]
    assert [c.path for c in d.changed] == ["t.csv"]
    assert d.tables["t.csv"]["rows"]["added"] == 2
    ws.add(project / "data")
    d2 = ws.diff(project / "v1.ars", project / "data.ars")
    assert d2.to_dict()["tables"]["t.csv"]["columns"]["added"] == ["country"]
    assert ws.diff(project / "data.ars", project / "data").same
