"""What the data workspace's operations return: plain records, printable as tables or JSON.

Kept apart from the workspace so that the console's fast `data status` can build a report without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class _Result:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AddResult(_Result):
    manifest: str
    path: str
    digest: str
    files: int
    size: int
    hashed: int
    new_blobs: int
    stored_by: dict[str, int]
    changed: bool


@dataclass
class FileChange(_Result):
    path: str
    old_size: int | None
    new_size: int | None
    old_digest: str | None = None
    new_digest: str | None = None


@dataclass
class StatusReport(_Result):
    manifest: str
    path: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    missing: bool = False
    hashed: int = 0

    @property
    def clean(self) -> bool:
        return not (self.added or self.removed or self.modified or self.missing)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


@dataclass
class DataDiff(_Result):
    a: str
    b: str
    a_digest: str
    b_digest: str
    added: list[FileChange] = field(default_factory=list)
    removed: list[FileChange] = field(default_factory=list)
    changed: list[FileChange] = field(default_factory=list)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def same(self) -> bool:
        return self.a_digest == self.b_digest


@dataclass
class CheckoutResult(_Result):
    manifest: str
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refetched: list[str] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class TransferResult(_Result):
    remote: str
    objects: int = 0
    transferred: int = 0
    already_there: int = 0
    bytes: int = 0


@dataclass
class GcResult(_Result):
    dry_run: bool
    removed: int = 0
    bytes_freed: int = 0
    kept: int = 0
    removed_digests: list[str] = field(default_factory=list)
