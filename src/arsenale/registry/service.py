"""The model registry's domain logic: versions, aliases, stages, lineage, diffs, events.

`RegistryAPI` is implemented in-process here and over HTTP by
`arsenale.client.registry`. Model files live in the content-addressed blob store;
a version row (with its manifest and contract) is written only once every file
is stored, in the transaction that allocates its number.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

from arsenale.errors import ArsenaleError, InvalidInput, NotFound
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
from arsenale.registry.uris import parse_model_uri
from arsenale.store.artifacts import ArtifactStore, hash_file
from arsenale.store.audit import AuditRecord
from arsenale.store.registry import SqlRegistryStore
from arsenale.tracking.artifact_paths import check_artifact_path
from arsenale.tracking.models import check_run_id, normalize_tags, now_ms

if TYPE_CHECKING:
    from arsenale.registry.webhooks import WebhookService
    from arsenale.tracking.service import TrackingService

MODEL_META_FILE = "arsenale-model.json"
"""Written next to a model logged to a run, so `runs:/<id>/<path>` can be registered without re-upload."""

MAX_FILES = 10_000


class RegistryAPI(Protocol):
    def create_model(self, name: str, description: str | None = None,
                     tags: Mapping[str, Any] | None = None) -> RegisteredModel: ...
    def get_model(self, name: str) -> RegisteredModel: ...
    def list_models(self, name_like: str | None = None, limit: int = 1000) -> list[RegisteredModel]: ...
    def upload_file(self, local_path: str | os.PathLike[str]) -> tuple[str, int]: ...
    def create_version(self, name: str, *, files: Sequence[ModelFile | Mapping[str, Any]] | None = None,
                       flavor: str | None = None, flavor_meta: Mapping[str, Any] | None = None,
                       contract: Mapping[str, Any] | None = None, run_id: str | None = None,
                       source: str | None = None, description: str | None = None,
                       tags: Mapping[str, Any] | None = None) -> ModelVersion: ...
    def get_version(self, name: str, version: int) -> ModelVersion: ...
    def list_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]: ...
    def resolve(self, uri: str) -> ModelVersion: ...
    def set_alias(self, name: str, alias: str, version: int, reason: str | None = None) -> ModelVersion: ...
    def delete_alias(self, name: str, alias: str, reason: str | None = None) -> None: ...
    def undo_alias(self, name: str, alias: str, reason: str | None = None) -> ModelVersion | None: ...
    def transition_stage(self, name: str, version: int, stage: str, archive_existing: bool = False,
                         reason: str | None = None) -> ModelVersion: ...
    def update_version(self, name: str, version: int, description: str | None = None,
                       tags: Mapping[str, Any] | None = None) -> ModelVersion: ...
    def events(self, name: str, limit: int = 200) -> list[ModelEvent]: ...
    def lineage(self, name: str, version: int) -> Lineage: ...
    def diff(self, name: str, a: int, b: int) -> VersionDiff: ...
    def download_version(self, name: str, version: int, dest: str | os.PathLike[str]) -> Path: ...
    def set_legal_hold(self, name: str, version: int, reason: str) -> LegalHold: ...
    def release_legal_hold(self, name: str, version: int, reason: str | None = None) -> LegalHold: ...
    def legal_holds(self, name: str | None = None, active_only: bool = True) -> list[LegalHold]: ...
    def delete_model_version(self, name: str, version: int, reason: str | None = None) -> None: ...


class LegalHold(BaseModel):
    """A legal hold on one model version: while `released_at` is null the version cannot be deleted, and
    retention never purges its files or the run that produced it."""

    id: int
    name: str
    version: int
    reason: str
    created_by: str
    creation_time: int
    released_at: int | None = None
    released_by: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None


def _reason(reason: Any) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > 2000:
        raise InvalidInput("reason must be a string of at most 2000 characters", field="reason")
    return reason


def _files(files: Sequence[ModelFile | Mapping[str, Any]]) -> list[ModelFile]:
    if isinstance(files, (str, bytes)) or len(files) > MAX_FILES:
        raise InvalidInput(f"files must be a list of at most {MAX_FILES} entries", field="files")
    out, seen = [], set()
    for f in files:
        try:
            mf = f if isinstance(f, ModelFile) else ModelFile.model_validate(f)
        except ValidationError as exc:
            raise InvalidInput(f"each file needs path, digest and size: {exc.errors()[0]['msg']}",
                               field="files") from None
        path = check_artifact_path(mf.path, "files.path")
        if path in seen:
            raise InvalidInput(f"file {path!r} is listed twice", field="files")
        seen.add(path)
        out.append(ModelFile(path=path, digest=mf.digest, size=mf.size))
    return out


class RegistryService:
    def __init__(self, store: SqlRegistryStore, blobs: ArtifactStore, tracking: TrackingService, actor: str,
                 webhooks: WebhookService | None = None) -> None:
        self.store = store
        self.blobs = blobs
        self.tracking = tracking
        self.actor = actor
        self.webhooks = webhooks

    def _emit(self, event: str, name: str, payload: dict[str, Any]) -> None:
        if self.webhooks is not None:
            self.webhooks.emit(event, {"event": event, "model": name, "actor": self.actor, **payload}, name)

    def _audit(self, action: str, entity_type: str = "model", entity_id: str = "",
               details: dict[str, Any] | None = None) -> AuditRecord:
        return AuditRecord(self.actor, action, entity_type, entity_id, details or {})

    # ---- models ------------------------------------------------------------------------

    def create_model(self, name: str, description: str | None = None,
                     tags: Mapping[str, Any] | None = None) -> RegisteredModel:
        check_model_name(name)
        if description is not None and not isinstance(description, str):
            raise InvalidInput("description must be a string", field="description")
        self.store.create_model(name, description, normalize_tags(tags), now_ms(),
                                self._audit("model.create", entity_id=name))
        return self.get_model(name)

    def get_model(self, name: str) -> RegisteredModel:
        return RegisteredModel(**self.store.get_model(check_model_name(name)))

    def list_models(self, name_like: str | None = None, limit: int = 1000) -> list[RegisteredModel]:
        if name_like is not None and not isinstance(name_like, str):
            raise InvalidInput("name_like must be a string", field="name_like")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50_000:
            raise InvalidInput("limit must be between 1 and 50000", field="limit")
        return [RegisteredModel(**m) for m in self.store.list_models(name_like, limit)]

    # ---- versions ----------------------------------------------------------------------

    def upload_file(self, local_path: str | os.PathLike[str]) -> tuple[str, int]:
        return self.blobs.put_file(Path(local_path))

    def _from_run(self, source: str) -> tuple[str, list[ModelFile], dict[str, Any]]:
        """Files and model metadata of a model logged to a run (`runs:/<run_id>/<path>`)."""
        rest = source[len("runs:/"):]
        run_id, _, path = rest.partition("/")
        check_run_id(run_id)
        prefix = check_artifact_path(path, "source")
        rows = self.tracking.store.artifact_rows(run_id, prefix)
        if not rows:
            raise NotFound(f"run {run_id} has no artifacts under {prefix!r}", field="source")
        meta_digest = next((d for p, d, _ in rows if p == f"{prefix}/{MODEL_META_FILE}"), None)
        if meta_digest is None:
            raise InvalidInput(f"{source} is not a logged model (no {MODEL_META_FILE}); log it with "
                               f"ars.log_model", field="source")
        meta = json.loads(self.blobs.get_bytes(meta_digest))
        files = [ModelFile(path=p[len(prefix) + 1:], digest=d, size=s) for p, d, s in rows
                 if p != f"{prefix}/{MODEL_META_FILE}"]
        return run_id, files, meta

    def create_version(self, name: str, *, files: Sequence[ModelFile | Mapping[str, Any]] | None = None,
                       flavor: str | None = None, flavor_meta: Mapping[str, Any] | None = None,
                       contract: Mapping[str, Any] | None = None, run_id: str | None = None,
                       source: str | None = None, description: str | None = None,
                       tags: Mapping[str, Any] | None = None) -> ModelVersion:
        check_model_name(name)
        if description is not None and not isinstance(description, str):
            raise InvalidInput("description must be a string", field="description")
        version_tags = normalize_tags(tags)
        if source is not None and not isinstance(source, str):
            raise InvalidInput("source must be a string", field="source")
        if source is not None and source.startswith("runs:/") and files is None:
            src_run, manifest, meta = self._from_run(source)
            if run_id is not None and run_id != src_run:
                raise InvalidInput("run_id differs from the run in source", field="run_id")
            run_id = src_run
            flavor = flavor or meta.get("flavor")
            flavor_meta = flavor_meta or meta.get("flavor_meta") or {}
            contract = contract or meta.get("contract") or {}
        else:
            if files is None:
                raise InvalidInput("files are required unless source is a runs:/ URI", field="files")
            manifest = _files(files)
            missing = [f.path for f in manifest if not self.blobs.exists(f.digest)]
            if missing:
                raise InvalidInput(f"files not uploaded to the artifact store: {', '.join(missing[:5])}",
                                   field="files")
        if not manifest:
            raise InvalidInput("a model version needs at least one file", field="files")
        if not isinstance(flavor, str) or not flavor:
            raise InvalidInput("flavor is required", field="flavor")
        if not isinstance(flavor_meta, Mapping) or (contract is not None and not isinstance(contract, Mapping)):
            raise InvalidInput("flavor_meta and contract must be JSON objects", field="flavor_meta")
        contract = dict(contract or {})
        if run_id is not None:
            run = self.tracking.get_run(check_run_id(run_id))
            if not contract.get("metrics"):
                contract["metrics"] = dict(run.data.metrics)
        row = {"run_id": run_id, "source": source or (f"runs:/{run_id}" if run_id else "upload"),
               "status": "READY", "stage": Stage.NONE.value, "description": description, "flavor": flavor,
               "flavor_meta": dict(flavor_meta), "files": [f.model_dump() for f in manifest],
               "contract": contract, "created_by": self.actor}
        version = self.store.create_version(name, row, version_tags, now_ms(),
                                            self._audit("model.register", "model_version",
                                                        details={"run_id": run_id, "flavor": flavor}))
        mv = self.get_version(name, version)
        self._emit("model.registered", name, {"version": version, "run_id": run_id})
        return mv

    def get_version(self, name: str, version: int) -> ModelVersion:
        return ModelVersion(**self.store.get_version(check_model_name(name), check_version(version)))

    def list_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        st = [Stage.parse(s).value for s in stages] if stages else None
        return [ModelVersion(**v) for v in self.store.list_versions(check_model_name(name), st)]

    def resolve(self, uri: str) -> ModelVersion:
        ref = parse_model_uri(uri)
        if ref.version is not None:
            version = ref.version
        elif ref.alias is not None:
            version = self.store.resolve_alias(ref.name, ref.alias)
        elif ref.stage is not None:
            version = self.store.latest_in_stage(ref.name, ref.stage.value)
        else:
            latest = self.get_model(ref.name).latest_version
            if latest is None:
                raise NotFound(f"model {ref.name!r} has no versions", field="uri")
            version = latest
        return self.get_version(ref.name, version)

    def update_version(self, name: str, version: int, description: str | None = None,
                       tags: Mapping[str, Any] | None = None) -> ModelVersion:
        if description is not None and not isinstance(description, str):
            raise InvalidInput("description must be a string", field="description")
        self.store.update_version(check_model_name(name), check_version(version), description,
                                  normalize_tags(tags), now_ms())
        self._emit("model.version_updated", name, {"version": version})
        return self.get_version(name, version)

    # ---- aliases and stages ------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, reason: str | None = None) -> ModelVersion:
        check_model_name(name)
        check_alias(alias)
        v = check_version(version)
        why = _reason(reason)
        before = self.store.set_alias(name, alias, v, now_ms(), self.actor, why, "alias",
                                      self._audit("model.alias.set"))
        self._emit("model.alias_set", name, {"alias": alias, "version": v, "previous_version": before,
                                             "reason": why})
        return self.get_version(name, v)

    def delete_alias(self, name: str, alias: str, reason: str | None = None) -> None:
        check_model_name(name)
        check_alias(alias)
        why = _reason(reason)
        before = self.store.set_alias(name, alias, None, now_ms(), self.actor, why, "alias_removed",
                                      self._audit("model.alias.remove"))
        self._emit("model.alias_removed", name, {"alias": alias, "previous_version": before, "reason": why})

    def undo_alias(self, name: str, alias: str, reason: str | None = None) -> ModelVersion | None:
        """Move `alias` back to where it pointed before its last move (removing it if it was new)."""
        check_model_name(name)
        check_alias(alias)
        last = self.store.last_alias_move(name, alias)
        if last is None:
            raise NotFound(f"alias {alias!r} of model {name!r} has no move to undo", field="alias")
        target = last["from_version"]
        why = _reason(reason) or f"undo of the move to version {last['version']}"
        self.store.set_alias(name, alias, target, now_ms(), self.actor, why, "alias_undo",
                             self._audit("model.alias.undo"))
        if target is None:
            self._emit("model.alias_removed", name, {"alias": alias, "reason": why})
            return None
        self._emit("model.alias_set", name, {"alias": alias, "version": target, "reason": why})
        return self.get_version(name, target)

    def transition_stage(self, name: str, version: int, stage: str, archive_existing: bool = False,
                         reason: str | None = None) -> ModelVersion:
        check_model_name(name)
        v = check_version(version)
        st = Stage.parse(stage)
        if not isinstance(archive_existing, bool):
            raise InvalidInput("archive_existing must be true or false", field="archive_existing")
        why = _reason(reason)
        moved = self.store.transition(name, v, st.value, archive_existing, now_ms(), self.actor, why,
                                      self._audit("model.stage.transition", "model_version"))
        self._emit("model.stage_changed", name, {"version": v, "from_stage": moved[0][1], "to_stage": st.value,
                                                 "archived": [m for m, _ in moved[1:]], "reason": why})
        return self.get_version(name, v)

    # ---- legal holds and deletion ------------------------------------------------------

    def set_legal_hold(self, name: str, version: int, reason: str) -> LegalHold:
        """Hold a version for legal reasons (audited): it cannot be deleted, nor its files purged, until
        `release_legal_hold`. A reason is required: it is what a later reader of the trail needs."""
        check_model_name(name)
        v = check_version(version)
        why = _reason(reason)
        if not why or not why.strip():
            raise InvalidInput("a legal hold needs a reason", field="reason")
        return LegalHold(**self.store.set_legal_hold(name, v, why, now_ms(), self._audit("model.legal_hold.set")))

    def release_legal_hold(self, name: str, version: int, reason: str | None = None) -> LegalHold:
        check_model_name(name)
        v = check_version(version)
        why = _reason(reason)
        return LegalHold(**self.store.release_legal_hold(name, v, why, now_ms(),
                                                         self._audit("model.legal_hold.release")))

    def legal_holds(self, name: str | None = None, active_only: bool = True) -> list[LegalHold]:
        """Holds of one model (or of every model), the active ones unless `active_only` is false."""
        if name is not None:
            check_model_name(name)
        if not isinstance(active_only, bool):
            raise InvalidInput("active_only must be true or false", field="active_only")
        return [LegalHold(**h) for h in self.store.legal_holds(name, active_only)]

    def delete_model_version(self, name: str, version: int, reason: str | None = None) -> None:
        """Delete a version for good (audited). Refused with a Conflict while an alias points at it, a
        deployment routes to or shadows it, or it is on legal hold. Its files stay in the blob store while
        anything else (a run, another version) references them."""
        check_model_name(name)
        v = check_version(version)
        why = _reason(reason)
        self.store.delete_version(name, v, now_ms(), why, self._audit("model.version.delete"))

    def events(self, name: str, limit: int = 200) -> list[ModelEvent]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", field="limit")
        return [ModelEvent(**e) for e in self.store.events(check_model_name(name), limit)]

    # ---- lineage and diffs -------------------------------------------------------------

    def lineage(self, name: str, version: int) -> Lineage:
        mv = self.get_version(name, version)
        out = Lineage(model=mv.name, version=mv.version, source=mv.source)
        fingerprint = mv.contract.get("data_fingerprint")
        if fingerprint:
            out.data.append({"kind": "training data fingerprint", "fingerprint": fingerprint,
                             "rows": (mv.contract.get("profile") or {}).get("rows")})
        if mv.run_id is None:
            return out
        try:
            run = self.tracking.get_run(mv.run_id)
        except NotFound:
            out.run = {"run_id": mv.run_id, "missing": True}
            return out
        tags = run.data.tags
        out.run = {"run_id": run.info.run_id, "run_name": run.info.run_name, "status": run.info.status.value,
                   "start_time": run.info.start_time, "params": run.data.params, "metrics": run.data.metrics,
                   "parent_run_id": run.info.parent_run_id}
        try:
            exp = self.tracking.get_experiment(run.info.experiment_id)
            out.experiment = {"experiment_id": exp.experiment_id, "name": exp.name}
        except ArsenaleError:
            out.experiment = {"experiment_id": run.info.experiment_id}
        for key, value in sorted(tags.items()):
            if key.startswith("ars.input."):
                out.data.append({"kind": "dataset", "name": key[len("ars.input."):], "version": value})
        if "ars.features" in tags:  # the feature versions a training set was retrieved with
            try:
                refs = json.loads(tags["ars.features"])
            except ValueError:
                refs = []
            for ref in refs if isinstance(refs, list) else []:
                view, _, feature = str(ref).partition(":")
                view_name, _, view_version = view.partition("@")
                out.data.append({"kind": "feature", "name": f"{view_name}:{feature}" if feature else view_name,
                                 "version": view_version})
        out.code = {k: tags[f"ars.source.{k}"] for k in ("git_commit", "git_dirty", "git_branch", "command")
                    if f"ars.source.{k}" in tags}
        out.environment = {k: tags[f"ars.source.{k}"] for k in ("python", "packages_hash", "host")
                           if f"ars.source.{k}" in tags}
        out.environment.update({k: v for k, v in mv.flavor_meta.items() if k.endswith("_version")})
        return out

    def diff(self, name: str, a: int, b: int) -> VersionDiff:
        va, vb = self.get_version(name, a), self.get_version(name, b)
        la, lb = self.lineage(name, a), self.lineage(name, b)
        d = VersionDiff(model=name, a=va.version, b=vb.version)
        pa = (la.run or {}).get("params", {})
        pb = (lb.run or {}).get("params", {})
        d.params = {k: [pa.get(k), pb.get(k)] for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)}
        ma, mb = va.contract.get("metrics", {}), vb.contract.get("metrics", {})
        d.metrics = {k: [ma.get(k), mb.get(k)] for k in sorted(set(ma) | set(mb)) if ma.get(k) != mb.get(k)}
        data_a = {x.get("fingerprint") or f"{x.get('name')}@{x.get('version')}" for x in la.data}
        data_b = {x.get("fingerprint") or f"{x.get('name')}@{x.get('version')}" for x in lb.data}
        if data_a != data_b:
            d.data = {"only_in_a": sorted(data_a - data_b), "only_in_b": sorted(data_b - data_a)}
        d.contract = _schema_diff(va.contract.get("inputs") or {}, vb.contract.get("inputs") or {})
        if va.flavor != vb.flavor:
            d.flavor = [va.flavor, vb.flavor]
        return d

    # ---- files -------------------------------------------------------------------------

    def download_version(self, name: str, version: int, dest: str | os.PathLike[str]) -> Path:
        """Every file of the version under `dest`, each verified against its digest: a tampered blob
        is refused, and a cached copy that no longer matches is replaced from the verified blob."""
        mv = self.get_version(name, version)
        root = Path(dest).resolve()
        for f in mv.files:
            target = (root / check_artifact_path(f.path)).resolve()
            if root not in target.parents:
                raise InvalidInput(f"model file {f.path!r} escapes the destination", field="files")
            if target.exists() and target.stat().st_size == f.size and hash_file(target) == f.digest:
                continue
            self.blobs.download(f.digest, target)
        return root


def _schema_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    ca = {c["name"]: c for c in a.get("columns", [])}
    cb = {c["name"]: c for c in b.get("columns", [])}
    out: dict[str, Any] = {}
    if set(ca) - set(cb):
        out["removed_columns"] = sorted(set(ca) - set(cb))
    if set(cb) - set(ca):
        out["added_columns"] = sorted(set(cb) - set(ca))
    changed = {n: [ca[n].get("dtype"), cb[n].get("dtype")] for n in sorted(set(ca) & set(cb))
               if ca[n].get("dtype") != cb[n].get("dtype")}
    if changed:
        out["changed_types"] = changed
    return out
