"""Gate runs in the store: each one recorded with the model version it judged and an audit entry in the same
transaction, and a passing one promoted (an alias, a canary) as a second, separately audited step.

The checks themselves run where the models and the data are (`arsenale.gates.runner`, usually a CI job);
this service only keeps their outcome, which is why it also works behind the REST API.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine

from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.gates.models import GateRun
from arsenale.gates.results import CheckResult
from arsenale.registry.service import RegistryAPI
from arsenale.store import gates as sql
from arsenale.store.audit import AuditRecord
from arsenale.store.audit import append as audit_append
from arsenale.store.db import read, write
from arsenale.tracking.models import now_ms

__all__ = ["GateAPI", "GateService", "check_record", "check_results"]

MAX_RESULTS_BYTES = 2_000_000
MAX_POLICY_BYTES = 100_000
MAX_CHECKS = 1000
MAX_ID = 2**31  # ids and versions are 32-bit integer columns on both stores


class GateAPI(Protocol):
    def record(self, name: str, version: int, *, dataset: str, results: Sequence[CheckResult | Mapping[str, Any]],
               policy: str, champion_version: int | None = None) -> GateRun: ...
    def promote(self, run_id: int, *, alias: str | None = None, canary: str | None = None) -> GateRun: ...
    def get(self, run_id: int) -> GateRun: ...
    def list(self, name: str | None = None, version: int | None = None, limit: int = 100) -> list[GateRun]: ...


def _finite(value: Any) -> Any:
    """NaN and infinities as strings: JSON has no spelling for them, and a stored result must read back."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def check_results(results: Any) -> list[dict[str, Any]]:
    """Results as stored: a non-empty list of checks, each with a name, a boolean verdict and a message."""
    if isinstance(results, (str, bytes)) or not isinstance(results, Sequence) or not results:
        raise InvalidInput("results must be a non-empty list of check results", field="results")
    if len(results) > MAX_CHECKS:
        raise InvalidInput(f"at most {MAX_CHECKS} check results per gate run", field="results")
    out = []
    for i, r in enumerate(results):
        item = r.to_dict() if isinstance(r, CheckResult) else r
        if not isinstance(item, Mapping):
            raise InvalidInput(f"results[{i}] must be an object", field="results")
        name, passed, message = item.get("name"), item.get("passed"), item.get("message")
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidInput(f"results[{i}].name must be a non-empty string of at most 256 characters",
                               field="results")
        if not isinstance(passed, bool):
            raise InvalidInput(f"results[{i}].passed must be true or false", field="results")
        if not isinstance(message, str):
            raise InvalidInput(f"results[{i}].message must be a string", field="results")
        try:
            CheckResult.from_dict(dict(item))
        except (TypeError, KeyError, ValueError) as exc:
            raise InvalidInput(f"results[{i}] is not a check result: {exc}", field="results") from None
        out.append(_finite(dict(item)))
    if len(json.dumps(out)) > MAX_RESULTS_BYTES:
        raise InvalidInput(f"results exceed {MAX_RESULTS_BYTES} bytes", field="results")
    return out


def _run(row: Any) -> GateRun:
    return GateRun(id=row.id, name=row.name, version=row.version, champion_version=row.champion_version,
                   dataset=row.dataset, passed=row.passed, results=json.loads(row.results), policy=row.policy,
                   promotion=json.loads(row.promotion) if row.promotion else None,
                   creation_time=row.creation_time, created_by=row.created_by)


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if len(value.encode()) > limit:
        raise InvalidInput(f"{field} exceeds {limit} bytes", field=field)
    return value


def _version(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < MAX_ID:
        raise InvalidInput(f"{field} must be a positive integer, got {value!r:.60}", field=field)
    return value


def check_record(version: Any, results: Any, dataset: Any, policy: Any, champion_version: Any
                 ) -> tuple[int, list[dict[str, Any]], str, str, int | None]:
    """A gate run's fields checked, with one message for local and remote callers alike."""
    return (_version(version, "version"), check_results(results), _text(dataset, "dataset", 1000),
            _text(policy, "policy", MAX_POLICY_BYTES),
            None if champion_version is None else _version(champion_version, "champion_version"))


class GateService:
    def __init__(self, engine: Engine, registry: RegistryAPI, deployments: Any, actor: str) -> None:
        self.engine = engine
        self.registry = registry
        self.deployments = deployments
        self.actor = actor

    def __repr__(self) -> str:
        return "GateService()"

    def record(self, name: str, version: int, *, dataset: str, results: Sequence[CheckResult | Mapping[str, Any]],
               policy: str, champion_version: int | None = None) -> GateRun:
        version, stored, dataset, policy, champion_version = check_record(version, results, dataset, policy,
                                                                          champion_version)
        self.registry.get_version(name, version)  # NotFound for an unknown version
        if champion_version is not None:
            self.registry.get_version(name, champion_version)
        passed = all(r["passed"] for r in stored)
        now = now_ms()
        with write(self.engine) as conn:
            run_id = sql.insert_run(conn, name=name, version=version, champion_version=champion_version,
                                    dataset=dataset, passed=passed, results=json.dumps(stored), policy=policy,
                                    promotion=None, creation_time=now, created_by=self.actor)
            audit_append(conn, AuditRecord(self.actor, "gate.run", "model_version", f"{name}/{version}", {
                "gate_run": run_id, "passed": passed, "champion_version": champion_version, "dataset": dataset,
                "failed": [r["name"] for r in stored if not r["passed"]]}), now)
        return self.get(run_id)

    def promote(self, run_id: int, *, alias: str | None = None, canary: str | None = None) -> GateRun:
        """What a pass earns: the alias moved to the candidate and/or a canary of it started in a deployment.
        A failed run promotes nothing; a run promotes once."""
        run = self.get(run_id)
        if alias is None and canary is None:
            raise InvalidInput("name an alias to set or a deployment to start a canary in", field="alias")
        if not run.passed:
            raise Conflict(f"gate run {run_id} failed ({', '.join(run.failures)}): nothing to promote",
                           field="run_id")
        if run.promotion is not None:
            raise Conflict(f"gate run {run_id} already promoted: {run.promotion}", field="run_id")
        reason = f"gate run {run_id} passed"
        done: dict[str, Any] = {}
        if canary is not None:
            # The canary first: a deployment that refuses it (unknown, a rollout in progress) leaves the alias
            # where it was.
            self.deployments.start_canary(_text(canary, "canary", 256), run.uri, reason=reason)
            done["canary"] = canary
        if alias is not None:
            self.registry.set_alias(run.name, _text(alias, "alias", 256), run.version, reason=reason)
            done["alias"] = alias
        now = now_ms()
        with write(self.engine) as conn:
            sql.set_promotion(conn, run_id, json.dumps(done))
            audit_append(conn, AuditRecord(self.actor, "gate.promote", "model_version",
                                           f"{run.name}/{run.version}", {"gate_run": run_id, **done}), now)
        return self.get(run_id)

    def get(self, run_id: int) -> GateRun:
        run_id = _version(run_id, "run_id")
        with read(self.engine) as conn:
            row = sql.get_run(conn, run_id)
        if row is None:
            raise NotFound(f"no gate run {run_id}", field="run_id")
        return _run(row)

    def list(self, name: str | None = None, version: int | None = None, limit: int = 100) -> list[GateRun]:
        if version is not None:
            version = _version(version, "version")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        with read(self.engine) as conn:
            return [_run(r) for r in sql.list_runs(conn, name, version, limit)]
