"""`arsenale deploy` against a temporary SQLite store with three registered versions of one model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arsenale import Client
from arsenale.cli.deploy import parse_duration, parse_steps, parse_weights
from arsenale.errors import InvalidInput
from arsenale.registry.flavors import flavor_for
from arsenale.registry.models import ModelFile
from arsenale.serving.models import LATENCY_BUCKETS_MS, VersionStats
from arsenale.tracking.models import now_ms
from tests.cli.test_cli import cli, dump, home, strict_json  # noqa: F401  (`home` is a fixture)


@pytest.fixture
def seeded(home: Path, tmp_path: Path) -> Path:  # noqa: F811
    from sklearn.linear_model import LogisticRegression

    client = Client()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    folder = tmp_path / "model"
    folder.mkdir()
    model = LogisticRegression().fit(X, y)
    meta = flavor_for(model).save(model, folder)
    digest, size = client.registry.upload_file(folder / "model.skops")
    for _ in range(3):
        client.registry.create_version("fraud", files=[ModelFile(path="model.skops", digest=digest, size=size)],
                                       flavor="sklearn", flavor_meta=meta)
    client.registry.set_alias("fraud", "champion", 1)
    client.registry.set_alias("fraud", "challenger", 2)
    return home / "arsenale.db"


def test_parsers() -> None:
    assert parse_duration("60s") == 60 and parse_duration("2m") == 120 and parse_duration("500ms") == 0.5
    assert parse_duration("1.5") == 1.5 and parse_duration("1h") == 3600
    assert parse_steps("5, 25,50,100") == [5, 25, 50, 100]
    assert parse_weights("fraud/5=50,fraud@b=50") == {"fraud/5": 50, "fraud@b": 50}
    for bad in ("soon", "-1s", "5 days"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)
    with pytest.raises(InvalidInput):
        parse_steps("5,half")
    for bad in ("fraud/5", "=50", "fraud/5=lots"):
        with pytest.raises(InvalidInput):
            parse_weights(bad)


def test_the_whole_story(seeded: Path) -> None:
    assert "no deployments yet" in cli("deploy", "list").stdout
    out = cli("deploy", "create", "fraud-api", "--model", "fraud@champion", "--reason", "first release").stdout
    assert "fraud/1" in out and "100%" in out
    out = cli("deploy", "split", "fraud-api", "--ab", "fraud/1=50,fraud/2=50", "--sticky-key", "customer_id").stdout
    assert "50%" in out and "sticky on 'customer_id'" in out
    out = cli("deploy", "shadow", "fraud-api", "--model", "fraud/3").stdout
    assert "shadow" in out and "fraud/3" in out
    cli("deploy", "shadow", "fraud-api", "--clear")
    cli("deploy", "rollback", "fraud-api")  # back to the split with the shadow
    cli("deploy", "rollback", "fraud-api")  # back to the split
    data = strict_json(cli("deploy", "rollback", "fraud-api", "--json").stdout)
    assert [(r["version"], r["weight"]) for r in data["policy"]["routes"]] == [(1, 100.0)]

    out = cli("deploy", "canary", "fraud-api", "--model", "fraud@challenger", "--steps", "10,50,100",
              "--interval", "2m", "--max-p99-ms", "50", "--min-requests", "100").stdout
    assert "canary fraud/2 vs fraud/1: running" in out and "10%" in out
    Client().deployments.record_stats("fraud-api", "replica-a", [
        VersionStats(model="fraud", version=v, window_start=now_ms(), requests=n, errors=e,
                     latency_counts=[0, n] + [0] * (len(LATENCY_BUCKETS_MS) - 1), latency_sum_ms=float(n))
        for v, n, e in ((1, 900, 3), (2, 100, 0))])
    out = cli("deploy", "status", "fraud-api").stdout
    assert "900" in out and "90.0%" in out and "0.33%" in out
    status = strict_json(cli("deploy", "status", "fraud-api", "--json").stdout)
    assert {v["version"]: v["requests"] for v in status["versions"]} == {1: 900, 2: 100}
    out = cli("deploy", "rollback", "fraud-api", "--reason", "not today").stdout
    assert "fraud/1" in out and "100%" in out
    history = strict_json(cli("deploy", "history", "fraud-api", "--json").stdout)
    assert [h["action"] for h in history][:2] == ["rollback:7", "canary"]
    assert "not today" in cli("deploy", "history", "fraud-api").stdout
    listing = cli("deploy", "list").stdout
    assert "fraud-api" in listing and "aborted" not in listing
    actions = [e["action"] for e in strict_json(cli("audit", "list", "--entity-type", "deployment", "--json").stdout)]
    assert actions.count("deployment.rollback") == 4 and "deployment.canary" in actions
    cli("deploy", "delete", "fraud-api")
    assert strict_json(cli("deploy", "list", "--json").stdout) == []


def test_errors_exit_with_their_code_and_change_nothing(seeded: Path) -> None:
    cli("deploy", "create", "fraud-api", "--model", "fraud/1")
    before = dump(seeded)
    assert "already exists" in cli("deploy", "create", "fraud-api", "--model", "fraud/2", code=4).stderr
    assert "no deployment" in cli("deploy", "status", "nope", code=3).stderr
    cli("deploy", "create", "x y", "--model", "fraud/1", code=2)
    cli("deploy", "create", "other", "--model", "fraud/42", code=3)
    cli("deploy", "split", "fraud-api", "--ab", "fraud/1=70,fraud/2=20", code=2)
    cli("deploy", "canary", "fraud-api", "--model", "fraud/2", "--interval", "whenever", code=2)
    cli("deploy", "canary", "fraud-api", "--model", "fraud/2", "--steps", "50,10", code=2)
    cli("deploy", "shadow", "fraud-api", code=2)
    cli("deploy", "rollback", "fraud-api", code=4)
    assert dump(seeded) == before


def test_k8s_manifests(seeded: Path) -> None:
    out = cli("deploy", "k8s", "fraud-api", "--image", "registry.example/arsenale:0.1", "--replicas", "3").stdout
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler"):
        assert f"kind: {kind}" in out or f'"kind": "{kind}"' in out
    assert "fraud-api" in out and "/v2/health/ready" in out


def test_compare_reads_the_inference_log(seeded: Path, tmp_path: Path) -> None:
    from arsenale.config import get_settings
    from arsenale.serving.inference_log import InferenceLog

    assert "no shadow answers logged" in cli("deploy", "compare", "fraud-api").stdout
    log = InferenceLog(get_settings().resolved_inference_log(), "fraud-api", replica="r1")
    for i in range(10):
        for version, role, answer in ((1, "route", i % 2), (3, "shadow", 0)):
            log.log(request_id=f"r{i}", model="fraud", version=version, role=role, inputs=[{"x": 1.0}],
                    outputs=[answer], latency_ms=1.0, timestamp_ms=1_000 + i)
        log.feedback(f"r{i}", i % 2, timestamp_ms=2_000)
    log.close()
    out = cli("deploy", "compare", "fraud-api").stdout
    assert "fraud/3" in out and "50.0%" in out and "100.0%" in out
    [row] = strict_json(cli("deploy", "compare", "fraud-api", "--json").stdout)
    assert (row["paired"], row["agreement"], row["answer_accuracy"], row["shadow_accuracy"]) == (10, 0.5, 1.0, 0.5)
    cli("deploy", "compare", "../etc", code=2)
