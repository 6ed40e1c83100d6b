"""`RegistryClient`: `RegistryAPI` over HTTP, with the same signatures, return types and exceptions.

Names, aliases, versions, stages and URIs are checked here with the service's own functions
before anything is sent, so bad input fails the same way as in the embedded store and never
becomes a malformed URL. Files travel on their own: `upload_file` streams one file to
`POST /blobs`; `download_version` fetches each manifest file, checks its BLAKE3 digest and
moves it into place only once it matches.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import blake3
from pydantic import TypeAdapter

from arsenale.client.http import HttpTransport, path_param, segment
from arsenale.errors import IntegrityError, InvalidInput, NotFound
from arsenale.registry.models import (
    Lineage,
    ModelEvent,
    ModelFile,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionDiff,
    check_alias,
    check_model_name,
    check_version,
)
from arsenale.registry.service import LegalHold
from arsenale.registry.uris import parse_model_uri
from arsenale.store.artifacts import hash_file
from arsenale.tracking.artifact_paths import check_artifact_path
from arsenale.tracking.models import normalize_tags

__all__ = ["RegistryClient"]

_API = "/api/v1"
_MODELS = TypeAdapter(list[RegisteredModel])
_VERSIONS = TypeAdapter(list[ModelVersion])
_HOLDS = TypeAdapter(list[LegalHold])
_EVENTS = TypeAdapter(list[ModelEvent])
_OCTETS = {"Content-Type": "application/octet-stream"}


def _limit(value: Any, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise InvalidInput(f"limit must be between 1 and {high}", field="limit")
    return value


def _file(f: ModelFile | Mapping[str, Any]) -> Any:
    return f.model_dump() if isinstance(f, ModelFile) else dict(f) if isinstance(f, Mapping) else f


class RegistryClient:
    """The model registry on a remote `arsenale server`; what `Client("http://…").registry` is."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"RegistryClient({self.transport.base_url!r})"

    def _model_path(self, name: str, suffix: str = "") -> str:
        return f"{_API}/models/{segment(check_model_name(name))}{suffix}"

    def _version_path(self, name: str, version: int, suffix: str = "") -> str:
        return self._model_path(name, f"/versions/{check_version(version)}{suffix}")

    def _alias_path(self, name: str, alias: str, suffix: str = "") -> str:
        check_model_name(name)
        return self._model_path(name, f"/aliases/{segment(check_alias(alias))}{suffix}")

    # ---- models ------------------------------------------------------------------------

    def create_model(self, name: str, description: str | None = None,
                     tags: Mapping[str, Any] | None = None) -> RegisteredModel:
        check_model_name(name)
        if description is not None and not isinstance(description, str):
            raise InvalidInput("description must be a string", field="description")
        body = {"name": name, "description": description, "tags": normalize_tags(tags)}
        r = self.transport.request("POST", f"{_API}/models", json=body)
        return RegisteredModel.model_validate_json(r.content)

    def get_model(self, name: str) -> RegisteredModel:
        r = self.transport.request("GET", self._model_path(name))
        return RegisteredModel.model_validate_json(r.content)

    def list_models(self, name_like: str | None = None, limit: int = 1000) -> list[RegisteredModel]:
        if name_like is not None and not isinstance(name_like, str):
            raise InvalidInput("name_like must be a string", field="name_like")
        params = {"name_like": name_like, "limit": _limit(limit, 50_000)}
        return _MODELS.validate_json(self.transport.request("GET", f"{_API}/models", params=params).content)

    # ---- versions ----------------------------------------------------------------------

    def upload_file(self, local_path: str | os.PathLike[str]) -> tuple[str, int]:
        """Stream one file to the server's blob store; returns its (digest, size)."""
        src = Path(local_path)
        if not src.is_file():
            raise NotFound(f"no such file: {src}", field="path")
        with open(src, "rb") as data:
            r = self.transport.request("POST", f"{_API}/blobs", content=data, headers=_OCTETS)
        body = r.json()
        return str(body["digest"]), int(body["size"])

    def create_version(self, name: str, *, files: Sequence[ModelFile | Mapping[str, Any]] | None = None,
                       flavor: str | None = None, flavor_meta: Mapping[str, Any] | None = None,
                       contract: Mapping[str, Any] | None = None, run_id: str | None = None,
                       source: str | None = None, description: str | None = None,
                       tags: Mapping[str, Any] | None = None) -> ModelVersion:
        path = self._model_path(name, "/versions")
        if files is not None and (isinstance(files, (str, bytes)) or not isinstance(files, Sequence)):
            raise InvalidInput("files must be a list of {path, digest, size} entries", field="files")
        body = {"files": None if files is None else [_file(f) for f in files], "flavor": flavor,
                "flavor_meta": None if flavor_meta is None else dict(flavor_meta),
                "contract": None if contract is None else dict(contract), "run_id": run_id, "source": source,
                "description": description, "tags": normalize_tags(tags)}
        return ModelVersion.model_validate_json(self.transport.request("POST", path, json=body).content)

    def get_version(self, name: str, version: int) -> ModelVersion:
        r = self.transport.request("GET", self._version_path(name, version))
        return ModelVersion.model_validate_json(r.content)

    def list_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        path = self._model_path(name, "/versions")
        params = {"stage": [Stage.parse(s).value for s in stages] if stages else None}
        return _VERSIONS.validate_json(self.transport.request("GET", path, params=params).content)

    def resolve(self, uri: str) -> ModelVersion:
        parse_model_uri(uri)
        r = self.transport.request("GET", f"{_API}/resolve", params={"uri": uri})
        return ModelVersion.model_validate_json(r.content)

    def update_version(self, name: str, version: int, description: str | None = None,
                       tags: Mapping[str, Any] | None = None) -> ModelVersion:
        path = self._version_path(name, version)
        if description is not None and not isinstance(description, str):
            raise InvalidInput("description must be a string", field="description")
        body = {"description": description, "tags": normalize_tags(tags)}
        return ModelVersion.model_validate_json(self.transport.request("PATCH", path, json=body).content)

    # ---- aliases and stages ------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, reason: str | None = None) -> ModelVersion:
        path = self._alias_path(name, alias)
        body = {"version": check_version(version), "reason": reason}
        return ModelVersion.model_validate_json(self.transport.request("PUT", path, json=body).content)

    def delete_alias(self, name: str, alias: str, reason: str | None = None) -> None:
        self.transport.request("DELETE", self._alias_path(name, alias), params={"reason": reason})

    def undo_alias(self, name: str, alias: str, reason: str | None = None) -> ModelVersion | None:
        r = self.transport.request("POST", self._alias_path(name, alias, "/undo"), json={"reason": reason})
        if r.content.strip() == b"null":
            return None
        return ModelVersion.model_validate_json(r.content)

    def transition_stage(self, name: str, version: int, stage: str, archive_existing: bool = False,
                         reason: str | None = None) -> ModelVersion:
        path = self._version_path(name, version, "/stage")
        if not isinstance(archive_existing, bool):
            raise InvalidInput("archive_existing must be true or false", field="archive_existing")
        body = {"stage": Stage.parse(stage).value, "archive_existing": archive_existing, "reason": reason}
        return ModelVersion.model_validate_json(self.transport.request("POST", path, json=body).content)

    # ---- legal holds and deletion ------------------------------------------------------

    def set_legal_hold(self, name: str, version: int, reason: str) -> LegalHold:
        r = self.transport.request("POST", self._version_path(name, version, "/legal-hold"), json={"reason": reason})
        return LegalHold.model_validate_json(r.content)

    def release_legal_hold(self, name: str, version: int, reason: str | None = None) -> LegalHold:
        r = self.transport.request("DELETE", self._version_path(name, version, "/legal-hold"),
                                   params={"reason": reason} if reason is not None else None)
        return LegalHold.model_validate_json(r.content)

    def legal_holds(self, name: str | None = None, active_only: bool = True) -> list[LegalHold]:
        if not isinstance(active_only, bool):
            raise InvalidInput("active_only must be true or false", field="active_only")
        params: dict[str, Any] = {"all": str(not active_only).lower()}
        if name is not None:
            params["name"] = check_model_name(name)
        return _HOLDS.validate_json(self.transport.request("GET", f"{_API}/legal-holds", params=params).content)

    def delete_model_version(self, name: str, version: int, reason: str | None = None) -> None:
        self.transport.request("DELETE", self._version_path(name, version),
                               params={"reason": reason} if reason is not None else None)

    def events(self, name: str, limit: int = 200) -> list[ModelEvent]:
        path = self._model_path(name, "/events")
        r = self.transport.request("GET", path, params={"limit": _limit(limit, 10_000)})
        return _EVENTS.validate_json(r.content)

    # ---- lineage and diffs -------------------------------------------------------------

    def lineage(self, name: str, version: int) -> Lineage:
        return Lineage.model_validate_json(
            self.transport.request("GET", self._version_path(name, version, "/lineage")).content)

    def diff(self, name: str, a: int, b: int) -> VersionDiff:
        params = {"a": check_version(a), "b": check_version(b)}
        r = self.transport.request("GET", self._model_path(name, "/diff"), params=params)
        return VersionDiff.model_validate_json(r.content)

    # ---- files -------------------------------------------------------------------------

    def download_version(self, name: str, version: int, dest: str | os.PathLike[str]) -> Path:
        """Every file of the version under `dest`, each verified against its digest: a file that arrives
        altered is refused, and a cached copy that no longer matches is replaced."""
        mv = self.get_version(name, version)
        root = Path(dest).resolve()
        targets = []
        for f in mv.files:
            target = (root / check_artifact_path(f.path)).resolve()
            if root not in target.parents:
                raise InvalidInput(f"model file {f.path!r} escapes the destination", field="files")
            targets.append((f, target))
        for f, target in targets:
            if target.is_file() and target.stat().st_size == f.size and hash_file(target) == f.digest:
                continue
            self._download_file(mv, f, target)
        return root

    def _download_file(self, mv: ModelVersion, f: ModelFile, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        digest = blake3.blake3()
        url = self._version_path(mv.name, mv.version, f"/files/{path_param(f.path)}")
        try:
            with self.transport.stream("GET", url) as response, open(tmp, "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != f.digest:
                raise IntegrityError(f"file {f.path!r} of model {mv.name!r} version {mv.version} arrived "
                                     f"with digest {digest.hexdigest()}, expected {f.digest}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
