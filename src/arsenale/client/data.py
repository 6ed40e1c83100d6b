"""`DatasetClient`: `DatasetAPI` over HTTP, with the same signatures, return types and exceptions.

Names, versions, policies and validation schemas are checked here with the service's own functions
before anything is sent. Data is read and converted to Parquet where the user's code runs, uploaded once
to `POST /blobs` (content-addressed), then registered by digest; reads stream the Parquet file back and
refuse it unless its BLAKE3 digest matches the version's manifest.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import blake3
from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport, segment
from arsenale.data.datasets import load_table, parquet_bytes, parquet_table, parse_schema
from arsenale.data.models import (
    DATA_FILE,
    QUARANTINE_FILE,
    Dataset,
    DatasetVersion,
    Policy,
    RunInput,
    check_dataset_name,
    check_version_ref,
)
from arsenale.data.validation import DataSchema, ValidationReport
from arsenale.errors import IntegrityError, InvalidInput, NotFound
from arsenale.tracking.models import check_run_id

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DatasetClient"]

_API = "/api/v1"
_DATASETS = TypeAdapter(list[Dataset])
_VERSIONS = TypeAdapter(list[DatasetVersion])
_INPUTS = TypeAdapter(list[RunInput])
_OCTETS = {"Content-Type": "application/octet-stream"}


def _ref(version: int | str) -> str:
    v = check_version_ref(version)
    return "latest" if v is None else str(v)


class DatasetClient:
    """Datasets on a remote `arsenale server`; what `Client("http://…").datasets` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"DatasetClient({self.transport.base_url!r})"

    def _path(self, name: str, suffix: str = "") -> str:
        return f"{_API}/datasets/{segment(check_dataset_name(name))}{suffix}"

    def register(self, name: str, data: Any, *, description: str | None = None,
                 schema: DataSchema | Mapping[str, Any] | str | None = None, policy: str = "reject",
                 format: str | None = None, source: str | None = None) -> DatasetVersion:
        path = self._path(name, "/versions")
        gate = Policy.parse(policy)
        rules = parse_schema(schema)
        if description is not None and not isinstance(description, str):
            raise InvalidInput("description must be a string", field="description")
        table, origin = load_table(data, format)
        r = self.transport.request("POST", f"{_API}/blobs", content=parquet_bytes(table), headers=_OCTETS)
        body = {"digest": r.json()["digest"], "format": "parquet", "policy": gate.value,
                "schema": None if rules is None else json.loads(rules.model_dump_json()),
                "description": description, "source": source or origin}
        return DatasetVersion.model_validate_json(self.transport.request("POST", path, json=body).content)

    def get(self, name: str, version: int | str = "latest") -> DatasetVersion:
        r = self.transport.request("GET", self._path(name, f"/versions/{_ref(version)}"))
        return DatasetVersion.model_validate_json(r.content)

    def get_dataset(self, name: str) -> Dataset:
        return Dataset.model_validate_json(self.transport.request("GET", self._path(name)).content)

    def list(self, name_like: str | None = None, limit: int = 1000) -> builtins.list[Dataset]:
        if name_like is not None and not isinstance(name_like, str):
            raise InvalidInput("name_like must be a string", field="name_like")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50_000:
            raise InvalidInput("limit must be between 1 and 50000", field="limit")
        r = self.transport.request("GET", f"{_API}/datasets", params={"name_like": name_like, "limit": limit})
        return _DATASETS.validate_json(r.content)

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        return _VERSIONS.validate_json(self.transport.request("GET", self._path(name, "/versions")).content)

    def read(self, name: str, version: int | str = "latest", *, quarantine: bool = False) -> pa.Table:
        """The version's data, streamed and checked against the manifest's digest before it is parsed."""
        dv = self.get(name, version)
        entry = dv.file(QUARANTINE_FILE if quarantine else DATA_FILE)
        if entry is None:
            what = "quarantined rows" if quarantine else "data"
            raise NotFound(f"dataset {dv.name!r} version {dv.version} has no {what}",
                           field="quarantine" if quarantine else "version")
        url = self._path(dv.name, f"/versions/{dv.version}/download")
        digest = blake3.blake3()
        chunks = []
        with self.transport.stream("GET", url, params={"quarantine": "true" if quarantine else None}) as resp:
            for chunk in resp.iter_bytes(1 << 20):
                digest.update(chunk)
                chunks.append(chunk)
        if digest.hexdigest() != entry.digest:
            raise IntegrityError(f"data of dataset {dv.name!r} version {dv.version} arrived with digest "
                                 f"{digest.hexdigest()}, expected {entry.digest}")
        return parquet_table(b"".join(chunks))

    def report(self, name: str, version: int | str = "latest") -> ValidationReport:
        r = self.transport.request("GET", self._path(name, f"/versions/{_ref(version)}/validation"))
        return ValidationReport.model_validate_json(r.content)

    def record_input(self, run_id: str, name: str, version: int | str) -> RunInput:
        check_run_id(run_id)
        body = {"name": check_dataset_name(name), "version": _ref(version)}
        r = self.transport.request("POST", f"{_API}/runs/{segment(run_id)}/inputs", json=body)
        return RunInput.model_validate_json(r.content)

    def inputs(self, run_id: str) -> builtins.list[RunInput]:
        r = self.transport.request("GET", f"{_API}/runs/{segment(check_run_id(run_id))}/inputs")
        return _INPUTS.validate_json(r.content)
