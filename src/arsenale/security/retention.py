"""Retention: per-project policies that delete what has grown older than an age, applied by the scheduler.

    service = RetentionService(engine, blobs, actor="alice", inference_log="/data/inference")
    service.set_policy("traces", "30d")         # keep LLM traces for 30 days, in every project ("*")
    service.apply(dry_run=True)                  # what would go, per policy: counts (and bytes); nothing changes
    service.apply()                              # delete it: one audit entry per policy, with the counts

What each kind deletes:

- `inference_logs`: whole hour partitions of the inference log (`<root>/<deployment>/[feedback/]date=…/hour=…`)
  whose hour ended before the cutoff, counted in partitions, files and bytes.
- `traces`: LLM traces whose end (their start when they never ended) is before the cutoff, with their spans
  and scores.
- `deleted_run_artifacts`: runs deleted longer ago than the age are purged as `mlflow gc` purges them: the run
  is deleted for good (its params, tags, metrics, inputs and artifact rows) and each of its blobs that no
  other run, model version, dataset, pipeline step, prompt or vector index references leaves the artifact
  store. Runs carry no deletion time, so the age counts from the first apply that saw the run deleted:
  purged at most one scheduler interval late, never early; a run restored in between starts over.

Projects: a policy names a project, or "*". A named project's policy covers that project's resources only
(traces by their project, deleted runs by their experiment's, inference logs by their deployment's); "*"
covers every project that has no policy of its own for that kind, so a project can keep things longer or
shorter than the rest. Inference logs of a deployment that no longer exists count as the `default` project's.

Safety. Nothing a legal hold protects is deleted: the run that produced a held model version is never
purged, and a blob any model version lists (held or not) is never removed. Work goes in bounded batches, each
its own transaction, at most `max_items` per policy and apply (`remaining` says when more is left for the
next one). An apply claims each policy with a lease in one conditional UPDATE, so two concurrent applies
never work the same policy (the second reports it `busy`); deletes are idempotent (the rows a DELETE
removed are what this apply counts), so a crashed apply is finished by the next. A dry run takes no lease
and writes nothing, not even an audit entry.

Known limit: blobs are shared by content. A new artifact with the same content as a blob being purged,
logged in the instant between the reference check and the removal, can lose its blob; the purge runs on
runs deleted days ago, so the window is the rare re-upload of identical content at that moment.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from arsenale.errors import InvalidInput, NotFound
from arsenale.security.projects import DEFAULT_PROJECT
from arsenale.security.tokens import ALL_PROJECTS, check_project
from arsenale.store import tables as t
from arsenale.store.artifacts import ArtifactStore
from arsenale.store.audit import AuditRecord, acting_as
from arsenale.store.audit import append as audit_append
from arsenale.store.db import in_chunks, read, write
from arsenale.units import format_duration, parse_duration

__all__ = ["KINDS", "ApplyReport", "PolicyResult", "RetentionPolicy", "RetentionService", "any_due"]

KINDS = ("inference_logs", "traces", "deleted_run_artifacts")
MAX_AGE_SECONDS = 100 * 366 * 86_400
MAX_NOW_MS = 9_000_000_000_000  # year 2255: trace times are int64 nanoseconds, which end in 2262
DEFAULT_EVERY_SECONDS = 86_400  # the scheduler applies each policy once a day
DEFAULT_LEASE_SECONDS = 3600
HOUR_MS = 3_600_000
_IN = 400  # ids per IN list: far below SQLite's bound-parameter limit
Kind = Literal["inference_logs", "traces", "deleted_run_artifacts"]


class RetentionPolicy(BaseModel):
    """Delete `kind` older than `max_age_seconds`, in `project` ("*": every project; see the module doc)."""

    project: str
    kind: Kind
    max_age_seconds: int
    creation_time: int
    created_by: str
    update_time: int
    updated_by: str
    last_applied_at: int | None = None

    @property
    def max_age(self) -> str:
        return format_duration(self.max_age_seconds)


class PolicyResult(BaseModel):
    """What one apply did (or, in a dry run, would do) for one policy."""

    project: str
    kind: Kind
    max_age_seconds: int
    cutoff: int = Field(description="ms since the epoch: what ended (or was deleted) before it goes")
    status: Literal["applied", "dry_run", "busy", "error"]
    deleted: dict[str, int] = Field(default_factory=dict)
    bytes: int | None = Field(default=None, description="bytes freed, where known")
    held: int = Field(default=0, description="items kept because a legal hold protects them")
    remaining: bool = Field(default=False, description="more was due than one apply deletes")
    error: str | None = None


class ApplyReport(BaseModel):
    now: int
    dry_run: bool
    results: list[PolicyResult]


def check_kind(kind: Any) -> Kind:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}; got {kind!r}", field="kind")
    return kind  # type: ignore[no-any-return]


def check_max_age(max_age: Any) -> int:
    """'30d', '12h', or seconds → whole seconds, at least one and at most a century."""
    if isinstance(max_age, int) and not isinstance(max_age, bool) and not 1 <= max_age <= MAX_AGE_SECONDS:
        raise InvalidInput("max_age must be between 1 second and 100 years", field="max_age")
    seconds = parse_duration(max_age, field="max_age")
    if seconds < 1 or seconds > MAX_AGE_SECONDS:
        raise InvalidInput("max_age must be between 1 second and 100 years", field="max_age")
    return round(seconds)


def _epoch_ms(now: int | datetime | None) -> int:
    if now is None:
        return int(time.time() * 1000)
    if isinstance(now, datetime):
        now = int(now.timestamp() * 1000)
    if isinstance(now, bool) or not isinstance(now, int) or not 0 <= now <= MAX_NOW_MS:
        raise InvalidInput("now must be epoch milliseconds (before year 2255) or a datetime", field="now")
    return now


def any_due(engine: Engine, now: int, every_seconds: float = DEFAULT_EVERY_SECONDS) -> bool:
    """Whether a policy is due (never applied, or last applied `every_seconds` ago): a cheap query."""
    p = t.retention_policies.c
    with read(engine) as conn:
        return conn.execute(sa.select(p.kind).where(
            sa.or_(p.last_applied_at.is_(None), p.last_applied_at <= now - int(every_seconds * 1000)))
            .limit(1)).first() is not None


class RetentionService:
    """Policies (set, list, delete: audited) and `apply`, next to the store (see the module doc)."""

    def __init__(self, engine: Engine, blobs: ArtifactStore, actor: str, inference_log: str | None = None, *,
                 batch_size: int = 500, max_items: int = 50_000,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.engine = engine
        self.blobs = blobs
        self.actor = actor
        self.inference_log = inference_log
        self.batch_size = batch_size
        self.max_items = max_items
        self.lease_ms = int(lease_seconds * 1000)

    # ---- policies ----------------------------------------------------------------------

    def set_policy(self, kind: str, max_age: Any, project: str = ALL_PROJECTS) -> RetentionPolicy:
        """Create or change the policy for (`project`, `kind`): delete what is older than `max_age`."""
        k, seconds, proj = check_kind(kind), check_max_age(max_age), check_project(project)
        now = int(time.time() * 1000)
        actor = acting_as.get() or self.actor  # the token a server request acts as
        p = t.retention_policies
        with write(self.engine) as conn:
            before = conn.execute(sa.select(p.c.max_age_seconds).where(p.c.project == proj, p.c.kind == k)).first()
            if before is None:
                conn.execute(sa.insert(p).values(project=proj, kind=k, max_age_seconds=seconds, creation_time=now,
                                                 created_by=actor, update_time=now, updated_by=actor))
            else:
                conn.execute(sa.update(p).where(p.c.project == proj, p.c.kind == k)
                             .values(max_age_seconds=seconds, update_time=now, updated_by=actor))
            audit_append(conn, AuditRecord(self.actor, "retention.policy.set", "retention_policy", f"{proj}/{k}",
                                           {"max_age_seconds": seconds,
                                            "previous_max_age_seconds": None if before is None else before[0]}),
                         now)
        return self.get_policy(k, proj)

    def get_policy(self, kind: str, project: str = ALL_PROJECTS) -> RetentionPolicy:
        k, proj = check_kind(kind), check_project(project)
        p = t.retention_policies
        with read(self.engine) as conn:
            row = conn.execute(sa.select(p).where(p.c.project == proj, p.c.kind == k)).mappings().first()
        if row is None:
            raise NotFound(f"no retention policy for {k} in project {proj!r}", field="kind")
        return RetentionPolicy(**row)

    def list_policies(self) -> list[RetentionPolicy]:
        p = t.retention_policies
        with read(self.engine) as conn:
            rows = conn.execute(sa.select(p).order_by(p.c.project, p.c.kind)).mappings().all()
        return [RetentionPolicy(**r) for r in rows]

    def delete_policy(self, kind: str, project: str = ALL_PROJECTS) -> None:
        k, proj = check_kind(kind), check_project(project)
        p = t.retention_policies
        now = int(time.time() * 1000)
        with write(self.engine) as conn:
            gone = conn.execute(sa.delete(p).where(p.c.project == proj, p.c.kind == k)).rowcount
            if not gone:
                raise NotFound(f"no retention policy for {k} in project {proj!r}", field="kind")
            audit_append(conn, AuditRecord(self.actor, "retention.policy.delete", "retention_policy",
                                           f"{proj}/{k}", {}), now)

    # ---- apply -------------------------------------------------------------------------

    def apply(self, now: int | datetime | None = None, dry_run: bool = False, *,
              due_every_seconds: float | None = None, owner: str | None = None) -> ApplyReport:
        """Apply every policy at `now` (epoch ms or datetime; default: the clock). With `due_every_seconds`
        (what the scheduler passes), only policies not applied for that long. One policy's failure is its
        result's `error`; the others still run."""
        if not isinstance(dry_run, bool):
            raise InvalidInput("dry_run must be true or false", field="dry_run")
        at = _epoch_ms(now)
        owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        results = []
        for policy in self.list_policies():
            if due_every_seconds is not None and policy.last_applied_at is not None \
                    and policy.last_applied_at > at - int(due_every_seconds * 1000):
                continue
            results.append(self._apply_one(policy, at, dry_run, owner, due_every_seconds))
        return ApplyReport(now=at, dry_run=dry_run, results=results)

    def _apply_one(self, policy: RetentionPolicy, at: int, dry_run: bool, owner: str,
                   due_every_seconds: float | None) -> PolicyResult:
        cutoff = at - policy.max_age_seconds * 1000
        base: dict[str, Any] = {"project": policy.project, "kind": policy.kind,
                                "max_age_seconds": policy.max_age_seconds, "cutoff": cutoff}
        if not dry_run and not self._claim(policy, at, owner, due_every_seconds):
            return PolicyResult(**base, status="busy")
        purge = {"inference_logs": self._inference_logs, "traces": self._traces,
                 "deleted_run_artifacts": self._deleted_runs}[policy.kind]
        try:
            deleted, freed, held, remaining = purge(at, cutoff, dry_run, self._covered(policy))
            result = PolicyResult(**base, status="dry_run" if dry_run else "applied", deleted=deleted, bytes=freed,
                                  held=held, remaining=remaining)
        except Exception as exc:  # noqa: BLE001 - one policy's failure must not stop the others
            msg = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            result = PolicyResult(**base, status="error", error=msg)
        if not dry_run:
            self._release(policy, at, owner, result)
        return result

    def _covered(self, policy: RetentionPolicy) -> _Projects:
        """The projects `policy` covers: its own, or for "*" every project without a policy of this kind."""
        if policy.project != ALL_PROJECTS:
            return _Projects(frozenset({policy.project}), inclusive=True)
        p = t.retention_policies.c
        with read(self.engine) as conn:
            own = {r for (r,) in conn.execute(sa.select(p.project).where(p.kind == policy.kind,
                                                                          p.project != ALL_PROJECTS))}
        return _Projects(frozenset(own), inclusive=False)

    def _claim(self, policy: RetentionPolicy, at: int, owner: str, due_every_seconds: float | None) -> bool:
        """Take the policy's lease (wall clock, not `at`) in one conditional UPDATE; False when another
        applier holds it (or, for the scheduler, another applied it since it was listed)."""
        p = t.retention_policies.c
        clock = int(time.time() * 1000)
        cond = [p.project == policy.project, p.kind == policy.kind,
                sa.or_(p.lease_until.is_(None), p.lease_until <= clock)]
        if due_every_seconds is not None:
            cond.append(sa.or_(p.last_applied_at.is_(None),
                               p.last_applied_at <= at - int(due_every_seconds * 1000)))
        with write(self.engine) as conn:
            return conn.execute(sa.update(t.retention_policies).where(*cond)
                                .values(lease_owner=owner, lease_until=clock + self.lease_ms)).rowcount == 1

    def _release(self, policy: RetentionPolicy, at: int, owner: str, result: PolicyResult) -> None:
        """Release the lease, mark the policy applied and write its audit entry, in one transaction."""
        p = t.retention_policies.c
        details = {"max_age_seconds": policy.max_age_seconds, "cutoff": result.cutoff, "status": result.status,
                   "deleted": result.deleted, "bytes": result.bytes, "held": result.held,
                   "remaining": result.remaining, "error": result.error}
        with write(self.engine) as conn:
            values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
            if result.status == "applied":
                values["last_applied_at"] = at
            conn.execute(sa.update(t.retention_policies).where(p.project == policy.project, p.kind == policy.kind,
                                                              p.lease_owner == owner).values(**values))
            audit_append(conn, AuditRecord(self.actor, "retention.apply", "retention_policy",
                                           f"{policy.project}/{policy.kind}", details), int(time.time() * 1000))

    # ---- traces ------------------------------------------------------------------------

    def _traces(self, at: int, cutoff: int, dry_run: bool,
                projects: _Projects) -> tuple[dict[str, int], int | None, int, bool]:
        tr = t.llm_traces.c
        # start <= end, so `start_ns < cutoff` (indexed) narrows the scan before the end is compared.
        old = sa.and_(tr.start_ns < cutoff * 1_000_000, sa.func.coalesce(tr.end_ns, tr.start_ns) < cutoff * 1_000_000,
                      projects.where(tr.project))
        counts = {"traces": 0, "spans": 0, "scores": 0}
        if dry_run:
            with read(self.engine) as conn:
                ids = [r for (r,) in conn.execute(sa.select(tr.trace_id).where(old).order_by(tr.trace_id)
                                                  .limit(self.max_items + 1))]
                remaining = len(ids) > self.max_items
                ids = ids[:self.max_items]
                for chunk in in_chunks(ids):
                    counts["traces"] += len(chunk)
                    counts["spans"] += self._count(conn, t.llm_spans, t.llm_spans.c.trace_id.in_(chunk))
                    counts["scores"] += self._count(conn, t.llm_scores, t.llm_scores.c.trace_id.in_(chunk))
            return counts, None, 0, remaining
        while counts["traces"] < self.max_items:
            with write(self.engine) as conn:
                ids = [r for (r,) in conn.execute(sa.select(tr.trace_id).where(old).order_by(tr.trace_id)
                                                  .limit(min(self.batch_size, _IN)))]
                if not ids:
                    return counts, None, 0, False
                counts["scores"] += conn.execute(sa.delete(t.llm_scores)
                                                 .where(t.llm_scores.c.trace_id.in_(ids))).rowcount
                counts["spans"] += conn.execute(sa.delete(t.llm_spans)
                                                .where(t.llm_spans.c.trace_id.in_(ids))).rowcount
                counts["traces"] += conn.execute(sa.delete(t.llm_traces)
                                                 .where(tr.trace_id.in_(ids), old)).rowcount
        with read(self.engine) as conn:
            remaining = conn.execute(sa.select(tr.trace_id).where(old).limit(1)).first() is not None
        return counts, None, 0, remaining

    @staticmethod
    def _count(conn: Connection, table: sa.Table, cond: Any) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(cond)).scalar_one())

    # ---- deleted runs ------------------------------------------------------------------

    def _deleted_runs(self, at: int, cutoff: int, dry_run: bool,
                      projects: _Projects) -> tuple[dict[str, int], int | None, int, bool]:
        runs, marks, mv, lh = t.runs.c, t.retention_deleted_runs.c, t.model_versions.c, t.legal_holds.c
        exps = t.experiments.c
        if not dry_run:
            self._mark_deleted_runs(at)
        held_runs = (sa.select(mv.run_id).select_from(t.model_versions.join(
            t.legal_holds, sa.and_(lh.name == mv.name, lh.version == mv.version)))
            .where(lh.released_at.is_(None), mv.run_id.is_not(None)))
        due = (sa.select(runs.run_id).select_from(t.runs.join(t.retention_deleted_runs, marks.run_id == runs.run_id))
               .where(runs.lifecycle_stage == "deleted", marks.seen_at <= cutoff,
                      runs.experiment_id.in_(sa.select(exps.experiment_id).where(projects.where(exps.project)))))
        counts = {"runs": 0, "artifacts": 0, "blobs": 0}
        freed = 0
        with read(self.engine) as conn:
            held = self._count(conn, t.runs, runs.run_id.in_(due.where(runs.run_id.in_(held_runs))))
        candidates = due.where(runs.run_id.not_in(held_runs)).order_by(runs.run_id)
        if dry_run:
            with read(self.engine) as conn:
                ids = [r for (r,) in conn.execute(candidates.limit(self.max_items + 1))]
                remaining = len(ids) > self.max_items
                ids = ids[:self.max_items]
                digests: dict[str, int] = {}
                for chunk in in_chunks(ids):
                    for d, size in conn.execute(sa.select(t.artifacts.c.digest, t.artifacts.c.size)
                                                .where(t.artifacts.c.run_id.in_(chunk))):
                        counts["artifacts"] += 1
                        digests[d] = size
                counts["runs"] = len(ids)
                unreferenced = self._unreferenced(conn, list(digests), set(ids))
            counts["blobs"] = len(unreferenced)
            return counts, sum(digests[d] for d in unreferenced), held, remaining
        while counts["runs"] < self.max_items:
            with write(self.engine) as conn:
                q = candidates.limit(min(self.batch_size, _IN))
                if conn.dialect.name == "postgresql":
                    q = q.with_for_update(of=t.runs, skip_locked=True)  # a concurrent purger takes other runs
                ids = [r for (r,) in conn.execute(q)]
                if not ids:
                    return counts, freed, held, False
                digests = {d: size for d, size in conn.execute(
                    sa.select(t.artifacts.c.digest, t.artifacts.c.size).where(t.artifacts.c.run_id.in_(ids)))}
                for child in (t.artifacts, t.params, t.tags, t.metric_chunks, t.latest_metrics, t.run_inputs):
                    n = conn.execute(sa.delete(child).where(child.c.run_id.in_(ids))).rowcount
                    if child is t.artifacts:
                        counts["artifacts"] += n
                counts["runs"] += conn.execute(sa.delete(t.runs).where(runs.run_id.in_(ids),
                                                                      runs.lifecycle_stage == "deleted")).rowcount
                conn.execute(sa.delete(t.retention_deleted_runs).where(marks.run_id.in_(ids)))
            # The rows are gone (committed); now the blobs nothing else references. A crash here leaves
            # blobs without references: storage, never data, is what is lost.
            with read(self.engine) as conn:
                unreferenced = self._unreferenced(conn, list(digests), set())
            for d in unreferenced:
                self.blobs.delete(d)
                counts["blobs"] += 1
                freed += digests[d]
        with read(self.engine) as conn:
            remaining = conn.execute(candidates.limit(1)).first() is not None
        return counts, freed, held, remaining

    def _mark_deleted_runs(self, at: int) -> None:
        """Record when each deleted run was first seen deleted; forget runs that are no longer deleted."""
        runs, marks = t.runs.c, t.retention_deleted_runs.c
        with write(self.engine) as conn:
            conn.execute(sa.delete(t.retention_deleted_runs).where(~sa.exists(
                sa.select(runs.run_id).where(runs.run_id == marks.run_id, runs.lifecycle_stage == "deleted"))))
            new = sa.select(runs.run_id, sa.literal(at, sa.BigInteger)).where(
                runs.lifecycle_stage == "deleted", ~sa.exists(sa.select(marks.run_id).where(marks.run_id == runs.run_id)))
            ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(t.retention_deleted_runs)
            conn.execute(ins.from_select(["run_id", "seen_at"], new).on_conflict_do_nothing())

    @staticmethod
    def _unreferenced(conn: Connection, digests: list[str], purged_runs: set[str]) -> list[str]:
        """The digests nothing references any more (runs in `purged_runs` do not count)."""
        art = t.artifacts.c
        used: set[str] = set()
        for chunk in in_chunks(digests):
            used.update(d for d, run in conn.execute(sa.select(art.digest, art.run_id).where(art.digest.in_(chunk)))
                        if run not in purged_runs)
            for col in _EXACT_REFS:
                used.update(d for (d,) in conn.execute(sa.select(col).where(col.in_(chunk)).distinct()))
        out = []
        for d in digests:
            if d in used:
                continue
            # Manifests are JSON text; a digest is 64 hex characters, so containment is exact enough.
            if any(conn.execute(sa.select(sa.literal(1)).where(col.contains(d, autoescape=True)).limit(1)).first()
                   for col in _TEXT_REFS):
                continue
            out.append(d)
        return out

    # ---- inference logs ----------------------------------------------------------------

    def _inference_logs(self, at: int, cutoff: int, dry_run: bool,
                        projects: _Projects) -> tuple[dict[str, int], int | None, int, bool]:
        """Hour partitions (requests and feedback) of the covered projects' deployments whose hour ended before
        `cutoff`."""
        counts = {"partitions": 0, "files": 0}
        if self.inference_log is None:
            return counts, 0, 0, False
        d = t.deployments.c
        with read(self.engine) as conn:
            project_of = dict(conn.execute(sa.select(d.name, d.project)).all())
        from pyarrow import fs as pafs  # type: ignore[import-untyped]

        from arsenale.serving.inference_log import FEEDBACK_DIR, _filesystem, _listing

        fs, base, _ = _filesystem(self.inference_log, None)
        freed = 0
        for deployment in _listing(fs, base, pafs.FileType.Directory):
            if not projects.covers(project_of.get(deployment.base_name, DEFAULT_PROJECT)):
                continue
            for folder in (deployment.path, f"{deployment.path}/{FEEDBACK_DIR}"):
                for day in _listing(fs, folder, pafs.FileType.Directory):
                    try:
                        day_start = int(datetime.strptime(day.base_name, "date=%Y-%m-%d")
                                        .replace(tzinfo=UTC).timestamp() * 1000)
                    except ValueError:
                        continue  # not a partition (the feedback folder)
                    if day_start + HOUR_MS > cutoff:
                        continue
                    for hour in _listing(fs, day.path, pafs.FileType.Directory):
                        if not re.fullmatch(r"hour=\d\d", hour.base_name) \
                                or day_start + (int(hour.base_name[5:]) + 1) * HOUR_MS > cutoff:
                            continue
                        if counts["partitions"] >= self.max_items:
                            return counts, freed, 0, True
                        selector = pafs.FileSelector(hour.path, recursive=True, allow_not_found=True)
                        files = [i for i in fs.get_file_info(selector) if i.type == pafs.FileType.File]
                        if not dry_run:
                            try:
                                fs.delete_dir(hour.path)
                            except FileNotFoundError:
                                continue  # another applier took it
                        counts["partitions"] += 1
                        counts["files"] += len(files)
                        freed += sum(i.size or 0 for i in files)
                    if not dry_run and not fs.get_file_info(pafs.FileSelector(day.path, allow_not_found=True)):
                        try:
                            fs.delete_dir(day.path)
                        except (FileNotFoundError, OSError):
                            pass  # a writer added an hour meanwhile: the folder stays
        return counts, freed, 0, False


@dataclass(frozen=True)
class _Projects:
    """`names` when `inclusive`, else every project but `names`."""

    names: frozenset[str]
    inclusive: bool

    def covers(self, project: str) -> bool:
        return (project in self.names) == self.inclusive

    def where(self, column: Any) -> Any:
        if self.inclusive:
            return column.in_(sorted(self.names))
        return column.not_in(sorted(self.names)) if self.names else sa.true()


_EXACT_REFS = (t.step_runs.c.output_digest, t.dataset_versions.c.digest, t.prompt_versions.c.digest,
               t.vector_index_versions.c.digest)
_TEXT_REFS = (t.model_versions.c.files, t.dataset_versions.c.files, t.dataset_versions.c.validation,
              t.vector_index_versions.c.files, t.gate_runs.c.results)
