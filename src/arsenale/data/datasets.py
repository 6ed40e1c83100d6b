"""`DatasetService`: versioned, content-addressed datasets, gated by validation.

    register(name, data, schema=..., policy="reject"|"quarantine"|"allow") → DatasetVersion

Data (a DataFrame, an Arrow table, or a CSV/Parquet file) is stored as Parquet in the blob
store; the version row records its fingerprint (`digest`, see `arsenale.registry.contract.
fingerprint`), the inferred schema and statistical profile, and the validation report. The
row is written only after every blob is stored, in the transaction that allocates the number.
Registering identical data again (same digest, same outcome) returns the existing version.

With a validation schema, failing data is handled by the policy:
- reject: the version is kept for the record with status "rejected"; "latest" never resolves to it;
- quarantine: failing rows go to `quarantine.parquet` with a `_reason` column and the clean rows
  are published (status "quarantined"); a table-level failure (a missing column, a wrong type,
  the row count) cannot be fixed by dropping rows, so it is rejected;
- allow: everything is published and the report kept.

`DatasetAPI` is implemented here in-process and over HTTP by `arsenale.client.data.DatasetClient`.
"""

from __future__ import annotations

import builtins
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from arsenale.data.models import (
    DATA_FILE,
    QUARANTINE_FILE,
    REASON_COLUMN,
    Dataset,
    DatasetFile,
    DatasetVersion,
    Policy,
    RunInput,
    Status,
    check_dataset_name,
    check_version_ref,
)
from arsenale.data.validation import DataSchema, ValidationReport, validate
from arsenale.errors import InvalidInput, NotFound
from arsenale.registry.contract import fingerprint, infer_schema, profile
from arsenale.store.artifacts import ArtifactStore
from arsenale.store.audit import AuditRecord
from arsenale.store.datasets import SqlDatasetStore
from arsenale.tracking.models import check_run_id, now_ms

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DatasetAPI", "DatasetService", "load_table", "parse_schema"]

FORMATS = ("parquet", "csv")
MAX_DESCRIPTION = 10_000


class DatasetAPI(Protocol):
    def register(self, name: str, data: Any, *, description: str | None = None,
                 schema: DataSchema | Mapping[str, Any] | str | None = None, policy: str = "reject",
                 format: str | None = None, source: str | None = None) -> DatasetVersion: ...
    def get(self, name: str, version: int | str = "latest") -> DatasetVersion: ...
    def get_dataset(self, name: str) -> Dataset: ...
    def list(self, name_like: str | None = None, limit: int = 1000) -> builtins.list[Dataset]: ...
    def versions(self, name: str) -> builtins.list[DatasetVersion]: ...
    def read(self, name: str, version: int | str = "latest", *, quarantine: bool = False) -> pa.Table: ...
    def report(self, name: str, version: int | str = "latest") -> ValidationReport: ...
    def record_input(self, run_id: str, name: str, version: int | str) -> RunInput: ...
    def inputs(self, run_id: str) -> builtins.list[RunInput]: ...


# ---------------------------------------------------------------- reading user data

def parse_schema(schema: Any) -> DataSchema | None:
    """A validation schema from a DataSchema, a mapping, JSON text or a JSON file (a Path)."""
    if schema is None:
        return None
    if isinstance(schema, os.PathLike):
        try:
            schema = Path(schema).read_text()
        except OSError as exc:
            raise InvalidInput(f"cannot read the schema file {schema}: {exc.strerror}", field="schema") from None
    return DataSchema.parse(schema)


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
            raise InvalidInput(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}", field="format")
        return fmt.lower()
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("parquet", "pq"):
        return "parquet"
    if suffix in ("csv", "txt"):
        return "csv"
    raise InvalidInput(f"cannot tell the format of {path.name!r}: name it .csv or .parquet, or pass format",
                       field="format")


def load_table(data: Any, fmt: str | None = None) -> tuple[pa.Table, str]:
    """(Arrow table, a description of where it came from) for a DataFrame, an Arrow table or a file."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        table, source = data, "arrow"
    elif isinstance(data, pd.DataFrame):
        table, source = _from_pandas(data), "dataframe"
    elif isinstance(data, (str, os.PathLike)):
        path = Path(data)
        kind = _format_of(path, fmt)
        if not path.is_file():
            raise NotFound(f"no such file: {path}", field="data")
        table, source = _read_file(path, kind), f"{kind}:{path.name}"
    else:
        raise InvalidInput(f"data must be a DataFrame, an Arrow table or a path to a CSV or Parquet file, "
                           f"not {type(data).__name__}", field="data")
    if table.num_columns == 0:
        raise InvalidInput("data has no columns", field="data")
    names = table.column_names
    if len(set(names)) != len(names):
        raise InvalidInput(f"data has duplicate column names: {sorted({n for n in names if names.count(n) > 1})}",
                           field="data")
    if REASON_COLUMN in names:
        raise InvalidInput(f"column {REASON_COLUMN!r} is reserved for quarantined rows", field="data")
    return table, source


def _from_pandas(df: pd.DataFrame) -> pa.Table:
    import pyarrow as pa

    if not all(isinstance(c, str) for c in df.columns):
        df = df.rename(columns=str)
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"data cannot be stored as Parquet: {exc}", field="data") from None


def _read_file(path: Path, kind: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if kind == "csv":
            return pacsv.read_csv(path)
        return pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise InvalidInput(f"{path.name} is not a readable {kind.upper()} file: {exc}", field="data") from None


def parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def parquet_table(data: bytes) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data))


def _as_json(model: Any) -> dict[str, Any]:
    return json.loads(model.model_dump_json())  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the service

class DatasetService:
    def __init__(self, store: SqlDatasetStore, blobs: ArtifactStore, actor: str) -> None:
        self.store = store
        self.blobs = blobs
        self.actor = actor

    def __repr__(self) -> str:
        return f"DatasetService({self.store.engine.url.render_as_string(hide_password=True)!r})"

    def register(self, name: str, data: Any, *, description: str | None = None,
                 schema: DataSchema | Mapping[str, Any] | str | None = None, policy: str = "reject",
                 format: str | None = None, source: str | None = None) -> DatasetVersion:
        import pyarrow as pa
        import pyarrow.compute as pc

        check_dataset_name(name)
        gate = Policy.parse(policy)
        if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
            raise InvalidInput(f"description must be a string of at most {MAX_DESCRIPTION} characters",
                               field="description")
        if source is not None and (not isinstance(source, str) or len(source) > 1000):
            raise InvalidInput("source must be a string of at most 1000 characters", field="source")
        rules = parse_schema(schema)
        table, origin = load_table(data, format)
        frame = table.to_pandas()
        report: ValidationReport | None = validate(frame, rules) if rules is not None else None

        status, files = Status.PUBLISHED, []
        published, published_frame = table, frame
        if report is not None and not report.passed:
            if gate is Policy.REJECT or (gate is Policy.QUARANTINE and report.table_failures):
                status = Status.REJECTED
            elif gate is Policy.QUARANTINE:
                assert report.mask is not None and report.reasons is not None
                mask = pa.array(report.mask)
                bad = table.filter(mask).append_column(
                    REASON_COLUMN, pa.array(report.reasons[report.mask], type=pa.string()))
                published = table.filter(pc.invert(mask))
                published_frame = frame.loc[~report.mask].reset_index(drop=True)
                digest, size = self.blobs.put_bytes(parquet_bytes(bad))
                files.append(DatasetFile(path=QUARANTINE_FILE, digest=digest, size=size))
                status = Status.QUARANTINED
        digest, size = self.blobs.put_bytes(parquet_bytes(published))
        files.insert(0, DatasetFile(path=DATA_FILE, digest=digest, size=size))
        row = {"digest": fingerprint(published_frame), "format": "parquet",
               "files": [f.model_dump() for f in files], "rows": published.num_rows,
               "columns": published.num_columns, "schema": _as_json(infer_schema(published_frame)),
               "profile": _as_json(profile(published_frame)),
               "validation": None if report is None else _as_json(report), "status": status.value,
               "source": source or origin, "created_by": self.actor}
        details = {"digest": row["digest"], "rows": row["rows"], "status": status.value, "policy": gate.value,
                   "failing_rows": None if report is None else report.failing_rows}
        version, _created = self.store.create_version(
            name, row, description, now_ms(), AuditRecord(self.actor, "dataset.register", "dataset_version",
                                                          name, details))
        return self.get(name, version)

    def register_blob(self, name: str, digest: str, *, format: str = "parquet", description: str | None = None,
                      schema: DataSchema | Mapping[str, Any] | str | None = None, policy: str = "reject",
                      source: str | None = None) -> DatasetVersion:
        """Register data already uploaded to the blob store (how the HTTP client sends large data)."""
        import tempfile

        check_dataset_name(name)
        Policy.parse(policy)
        parse_schema(schema)
        if not isinstance(digest, str) or not self.blobs.exists(digest):
            raise InvalidInput(f"data blob {digest!r} is not in the artifact store; upload it first",
                               field="digest")
        kind = _format_of(Path("upload"), format)
        with tempfile.TemporaryDirectory(prefix="arsenale-dataset-") as tmp:
            local = self.blobs.download(digest, Path(tmp) / f"upload.{kind}")
            return self.register(name, local, description=description, schema=schema, policy=policy,
                                 format=kind, source=source or "upload")

    def get(self, name: str, version: int | str = "latest") -> DatasetVersion:
        return DatasetVersion(**self.store.get_version(check_dataset_name(name), check_version_ref(version)))

    def get_dataset(self, name: str) -> Dataset:
        return Dataset(**self.store.get_dataset(check_dataset_name(name)))

    def list(self, name_like: str | None = None, limit: int = 1000) -> builtins.list[Dataset]:
        if name_like is not None and not isinstance(name_like, str):
            raise InvalidInput("name_like must be a string", field="name_like")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50_000:
            raise InvalidInput("limit must be between 1 and 50000", field="limit")
        return [Dataset(**d) for d in self.store.list_datasets(name_like, limit)]

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        return [DatasetVersion(**v) for v in self.store.list_versions(check_dataset_name(name))]

    def _file(self, dv: DatasetVersion, quarantine: bool) -> DatasetFile:
        path = QUARANTINE_FILE if quarantine else DATA_FILE
        entry = dv.file(path)
        if entry is None:
            what = "quarantined rows" if quarantine else "data"
            raise NotFound(f"dataset {dv.name!r} version {dv.version} has no {what}",
                           field="quarantine" if quarantine else "version")
        return entry

    def read(self, name: str, version: int | str = "latest", *, quarantine: bool = False) -> pa.Table:
        """The version's data (or its quarantined rows), verified against the stored digest."""
        dv = self.get(name, version)
        return parquet_table(self.blobs.get_bytes(self._file(dv, quarantine).digest, verify=True))

    def download_file(self, name: str, version: int | str, path: str, dest: str | os.PathLike[str]
                      ) -> tuple[DatasetVersion, DatasetFile]:
        """One file of the version's manifest, verified, written to `dest`."""
        dv = self.get(name, version)
        entry = dv.file(path)
        if entry is None:
            raise NotFound(f"dataset {dv.name!r} version {dv.version} has no file {path!r}", field="path")
        self.blobs.download(entry.digest, Path(dest))
        return dv, entry

    def report(self, name: str, version: int | str = "latest") -> ValidationReport:
        dv = self.get(name, version)
        if dv.validation is None:
            raise NotFound(f"dataset {dv.name!r} version {dv.version} was registered without a validation "
                           f"schema", field="version")
        return ValidationReport.model_validate(dv.validation)

    # ---- lineage -----------------------------------------------------------------------

    def record_input(self, run_id: str, name: str, version: int | str) -> RunInput:
        """Record that a run read a dataset version (and tag the run `ars.input.<name>` = version)."""
        check_run_id(run_id)
        dv = self.get(name, version)
        return RunInput(**self.store.record_input(run_id, dv.name, dv.version, now_ms()))

    def inputs(self, run_id: str) -> builtins.list[RunInput]:
        return [RunInput(**r) for r in self.store.inputs_of_run(check_run_id(run_id))]

    def consumers(self, name: str, version: int | str) -> builtins.list[RunInput]:
        """The runs that read this version."""
        dv = self.get(name, version)
        return [RunInput(**r) for r in self.store.runs_of_version(dv.name, dv.version)]
