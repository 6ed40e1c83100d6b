"""Gate runs in the store, on SQLite, PostgreSQL and over HTTP: recorded with the version they judged and an
audit entry, promoted only when they passed and only once, and bad input refused with the store unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import arsenale as ars
from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.gates.results import CheckResult
from arsenale.gates.stats import Interval, McNemar
from tests.serving.conftest import Fitted, cancer, register  # noqa: F401  (fixtures)

POLICY = '[[performance]]\nmetric = "accuracy"\n'
GOOD = [CheckResult("performance.accuracy", True, "accuracy 0.95 vs 0.93", 0.95, 0.93,
                    Interval(0.02, 0.01, 0.03, 0.95, 1000), McNemar(12, 3, 0.035),
                    {"rows": 569, "groups": [{"group": "a", "candidate": 0.9}]}),
        CheckResult("robustness.noise", True, "stable", 1.0)]
BAD = [GOOD[0], CheckResult("fairness.sex.demographic_parity_difference", False, "0.4 > 0.1", 0.4)]


@pytest.fixture
def gates(client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cancer: Fitted) -> Any:  # noqa: F811
    """The client's gate API, with model bc registered twice through the SDK on the same store."""
    monkeypatch.setenv("ARSENALE_URI", client.uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "artifacts"))
    register("bc", cancer)
    register("bc", cancer)
    return client


def test_a_run_is_stored_with_its_version_and_audited(gates: Any) -> None:
    run = gates.gates.record("bc", 2, dataset="dataset:holdout@1", results=GOOD, policy=POLICY,
                             champion_version=1)
    assert run.passed and (run.name, run.version, run.champion_version) == ("bc", 2, 1)
    assert run.checks[0] == GOOD[0] and run.checks[1].interval is None
    assert run.policy == POLICY and run.promotion is None and run.uri == "models:/bc/2"
    assert gates.gates.get(run.id) == run
    failed = gates.gates.record("bc", 1, dataset="holdout.parquet", results=BAD, policy=POLICY)
    assert not failed.passed and failed.failures == ["fairness.sex.demographic_parity_difference"]
    assert [r.id for r in gates.gates.list("bc")] == [failed.id, run.id]
    assert [r.id for r in gates.gates.list("bc", 2)] == [run.id] and gates.gates.list("other") == []
    entries = gates.audit.entries(action="gate.run")
    assert [(e.entity_id, e.details["passed"]) for e in entries] == [("bc/2", True), ("bc/1", False)]
    assert entries[1].details["failed"] == ["fairness.sex.demographic_parity_difference"]


def test_a_pass_promotes_once_and_a_failure_never(gates: Any) -> None:
    run = gates.gates.record("bc", 2, dataset="d", results=GOOD, policy=POLICY, champion_version=1)
    promoted = gates.gates.promote(run.id, alias="challenger")
    assert promoted.promotion == {"alias": "challenger"}
    assert gates.registry.resolve("models:/bc@challenger").version == 2
    with pytest.raises(Conflict, match="already promoted"):
        gates.gates.promote(run.id, alias="champion")
    assert "champion" not in gates.registry.get_version("bc", 2).aliases
    failed = gates.gates.record("bc", 1, dataset="d", results=BAD, policy=POLICY)
    with pytest.raises(Conflict, match="failed .*demographic_parity"):
        gates.gates.promote(failed.id, alias="challenger")
    assert gates.registry.resolve("models:/bc@challenger").version == 2
    assert [e.details for e in gates.audit.entries(action="gate.promote")] == [
        {"gate_run": run.id, "alias": "challenger"}]


def test_a_pass_starts_a_canary(gates: Any) -> None:
    gates.deployments.create("bc-api", "bc/1")
    run = gates.gates.record("bc", 2, dataset="d", results=GOOD, policy=POLICY, champion_version=1)
    assert gates.gates.promote(run.id, canary="bc-api").promotion == {"canary": "bc-api"}
    policy = gates.deployments.get("bc-api").policy
    assert policy.canary is not None and policy.canary.canary.version == 2


def test_a_canary_refused_by_its_deployment_leaves_everything_as_it_was(gates: Any) -> None:
    run = gates.gates.record("bc", 2, dataset="d", results=GOOD, policy=POLICY, champion_version=1)
    with pytest.raises(NotFound):
        gates.gates.promote(run.id, alias="challenger", canary="no-such-deployment")
    assert gates.gates.get(run.id).promotion is None and gates.registry.get_version("bc", 2).aliases == []


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"version": 9}, NotFound, "version"),
    ({"name": "nope"}, NotFound, "nope"),
    ({"champion_version": 7}, NotFound, "7"),
    ({"version": 0}, InvalidInput, "positive integer"),
    ({"version": 2**40}, InvalidInput, "positive integer"),
    ({"version": "2"}, InvalidInput, "positive integer"),
    ({"results": []}, InvalidInput, "non-empty list"),
    ({"results": "pass"}, InvalidInput, "non-empty list"),
    ({"results": [{"name": "x", "passed": "yes", "message": ""}]}, InvalidInput, "true or false"),
    ({"results": [{"name": "", "passed": True, "message": ""}]}, InvalidInput, "name"),
    ({"results": [{"name": "x", "passed": True}]}, InvalidInput, "message"),
    ({"results": [{"name": "x", "passed": True, "message": "m", "interval": {"gain": 1}}]}, InvalidInput,
     "not a check result"),
    ({"results": [{"name": "x", "passed": True, "message": "m" * 3_000_000}]}, InvalidInput, "exceed"),
    ({"policy": "x" * 200_000}, InvalidInput, "policy exceeds"),
    ({"dataset": 3}, InvalidInput, "dataset must be a string"),
])
def test_bad_records_are_refused_and_nothing_is_stored(gates: Any, kwargs: dict[str, Any], error: type,
                                                       match: str) -> None:
    args = {"name": "bc", "version": 2, "dataset": "d", "results": GOOD, "policy": POLICY, **kwargs}
    name, version = args.pop("name"), args.pop("version")
    with pytest.raises(error, match=match):
        gates.gates.record(name, version, **args)
    assert gates.gates.list() == [] and gates.audit.entries(action="gate.run") == []


@pytest.mark.parametrize("run_id", [0, -1, 2**40, "1", True])
def test_bad_run_ids_are_clear_errors(gates: Any, run_id: Any) -> None:
    with pytest.raises(InvalidInput, match="positive integer"):
        gates.gates.get(run_id)
    with pytest.raises(InvalidInput, match="positive integer"):
        gates.gates.promote(run_id, alias="challenger")


def test_unknown_runs_and_empty_promotions(gates: Any) -> None:
    with pytest.raises(NotFound, match="no gate run 42"):
        gates.gates.get(42)
    run = gates.gates.record("bc", 2, dataset="d", results=GOOD, policy=POLICY)
    with pytest.raises(InvalidInput, match="name an alias"):
        gates.gates.promote(run.id)
    with pytest.raises(InvalidInput, match="alias"):
        gates.gates.promote(run.id, alias="Not An Alias!")
    assert gates.gates.get(run.id).promotion is None


def test_non_finite_values_survive_the_trip(gates: Any) -> None:
    odd = CheckResult("slices.region.accuracy", True, "one slice undefined", float("nan"),
                      details={"slices": [{"slice": "north", "candidate": float("inf")}]})
    run = gates.gates.record("bc", 2, dataset="d", results=[odd], policy=POLICY)
    stored = gates.gates.get(run.id).results[0]
    assert stored["candidate"] == "nan" and stored["details"]["slices"][0]["candidate"] == "inf"


def test_the_sdk_client_is_one_per_store(gates: Any) -> None:
    assert ars.get_client().gates.list() == []
