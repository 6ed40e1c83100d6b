"""Schemas of the dataset registry: datasets, their versions, run inputs; name, version and policy checks."""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import InvalidInput

DATA_FILE = "data.parquet"
QUARANTINE_FILE = "quarantine.parquet"
REASON_COLUMN = "_reason"
LATEST = "latest"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


class Schema(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")


class Policy(str, Enum):
    """What registration does with data that fails its validation schema."""

    REJECT = "reject"          # keep the version for the record, status "rejected"; never "latest"
    QUARANTINE = "quarantine"  # publish the clean rows; failing rows go to their own file with a _reason
    ALLOW = "allow"            # publish everything; the report is kept

    @classmethod
    def parse(cls, value: Any) -> Policy:
        if isinstance(value, Policy):
            return value
        if isinstance(value, str):
            for p in cls:
                if p.value == value.strip().lower():
                    return p
        raise InvalidInput(f"policy must be one of reject, quarantine, allow; got {value!r}", field="policy")


class Status(str, Enum):
    PUBLISHED = "published"      # every row passed (or no schema, or policy allow)
    QUARANTINED = "quarantined"  # published: the clean rows; the failing rows are in quarantine.parquet
    REJECTED = "rejected"        # failed under policy reject (or a table-level failure under quarantine)


class DatasetFile(Schema):
    path: str
    digest: str
    size: int


class Dataset(Schema):
    name: str
    project: str = "default"
    description: str | None = None
    creation_time: int
    last_update_time: int
    latest_version: int | None = Field(default=None, description="the newest version that is not rejected")
    versions: int = 0


class DatasetVersion(Schema):
    name: str
    version: int
    digest: str = Field(description="fingerprint of the published data (names, types and values)")
    format: str = Field(description="how the data is stored")
    files: list[DatasetFile]
    rows: int
    columns: int
    data_schema: dict[str, Any] = Field(description="the inferred schema (columns, dtypes, ranges)")
    profile: dict[str, Any] = Field(description="per-column statistics: the drift reference")
    validation: dict[str, Any] | None = Field(default=None, description="the validation report, if validated")
    status: Status
    source: str | None = None
    created_by: str
    creation_time: int

    @property
    def uri(self) -> str:
        return f"dataset:{self.name}@{self.version}"

    def file(self, path: str) -> DatasetFile | None:
        return next((f for f in self.files if f.path == path), None)


class RunInput(Schema):
    run_id: str
    name: str
    version: int
    creation_time: int


def check_dataset_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInput(f"dataset name {name!r} must start with a letter or digit and hold only letters, "
                           f"digits, '_', '.' and '-' (at most 200)", field="name")
    return name


def check_version(version: Any) -> int:
    if isinstance(version, bool):
        raise InvalidInput(f"version must be a positive integer or 'latest', got {version!r}", field="version")
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise InvalidInput(f"version must be a positive integer or 'latest', got {version!r}",
                           field="version") from None
    if v < 1 or v > 2**31 - 1 or (isinstance(version, float) and not version.is_integer()):
        raise InvalidInput(f"version must be a positive integer or 'latest', got {version!r}", field="version")
    return v


def check_version_ref(version: Any) -> int | None:
    """A version number, or None for "latest"."""
    if version is None or (isinstance(version, str) and version.strip().lower() == LATEST):
        return None
    return check_version(version)
