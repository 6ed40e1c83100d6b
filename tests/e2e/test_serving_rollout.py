"""`arsenale serve --deployment` as a real process under steady load: a canary rolled out to 100% by the
server's own controller, then rolled back from the command line — and not one request fails.

Runs on SQLite and PostgreSQL: the server, the load and the CLI are separate processes sharing the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from arsenale.platform import Client
from tests.conftest import _truncate_postgres, free_port_pair

pytestmark = pytest.mark.slow


def _register(env: dict[str, str], cwd: Path) -> None:
    script = """
import arsenale as ars
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
X, y = load_breast_cancer(return_X_y=True, as_frame=True)
for c in (1.0, 0.05):
    m = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(X, y)
    ars.register_model("bc", m, signature_from=X, reference=X, labels=y)
X.head(50).to_json("rows.json", orient="records")
"""
    subprocess.run([sys.executable, "-c", script], env=env, cwd=cwd, check=True, capture_output=True, timeout=120)


def _cli(env: dict[str, str], cwd: Path, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "arsenale.cli.main", *args, "--json"], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_canary_to_100_and_rollback_drop_no_request(backend: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSENALE_")}
    env.update(ARSENALE_HOME=str(tmp_path / ".arsenale"), ARSENALE_ACTOR="release-bot",
               ARSENALE_INFERENCE_LOG=str(tmp_path / "inference"))
    if backend == "postgres":
        env["ARSENALE_URI"] = request.getfixturevalue("pg_database")
        _truncate_postgres(env["ARSENALE_URI"])  # this worker's database: start from an empty store
    _register(env, tmp_path)
    rows = json.loads((tmp_path / "rows.json").read_text())
    _cli(env, tmp_path, "deploy", "create", "bc-api", "--model", "bc/1")
    port = free_port_pair()
    server = subprocess.Popen([sys.executable, "-m", "arsenale.cli.main", "serve", "--deployment", "bc-api",
                               "--port", str(port), "--workers", "1"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    failures: list[str] = []
    versions: Counter[str] = Counter()
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            i = worker
            while not stop.is_set():
                i += 4
                try:
                    r = http.post("/predict", json={"records": [rows[i % len(rows)]]})
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code}: {r.text[:200]}")
                else:
                    versions[r.headers["x-model-version"]] += 1

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read() if server.stdout else ""
            time.sleep(0.2)
        threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(4)]
        for t in threads:
            t.start()
        _cli(env, tmp_path, "deploy", "canary", "bc-api", "--model", "bc/2", "--steps", "20,50,100",
             "--interval", "1s", "--min-requests", "30", "--max-error-rate", "0.05")
        store = Client(env.get("ARSENALE_URI") or f"sqlite:///{tmp_path / '.arsenale' / 'arsenale.db'}",
                       artifacts=str(tmp_path / ".arsenale" / "artifacts"))
        deadline = time.monotonic() + 90
        while True:  # read in-process: polling through the CLI costs a process start per look
            plan = store.deployments.get("bc-api").policy.canary
            if plan and plan.state != "running":
                break
            assert time.monotonic() < deadline, f"the rollout did not finish: {plan}"
            time.sleep(0.2)
        assert plan.state == "promoted"
        time.sleep(1.5)  # the replica applies the promoted policy; traffic now goes to v2 alone
        before = Counter(versions)
        time.sleep(1.0)
        assert set((versions - before)) == {"bc/2"}
        rolled = _cli(env, tmp_path, "deploy", "rollback", "bc-api", "--reason", "rehearsal")
        assert [(r["version"], r["weight"]) for r in rolled["policy"]["routes"]] == [(1, 100.0)]
        time.sleep(1.5)
        before = Counter(versions)
        time.sleep(1.0)
        assert set((versions - before)) == {"bc/1"}
    finally:
        stop.set()
        time.sleep(0.2)
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    assert failures == [], failures[:5]
    assert versions["bc/1"] > 50 and versions["bc/2"] > 50
    decisions = [d["action"] for d in _cli(env, tmp_path, "deploy", "status", "bc-api")["decisions"]]
    assert "promote" in decisions and "advance" in decisions
    audit = [e["action"] for e in _cli(env, tmp_path, "audit", "list", "--entity-type", "deployment",
                                       "--entity-id", "bc-api")]
    assert audit[:2] == ["deployment.create", "deployment.canary"] and audit[-1] == "deployment.rollback"
    assert "deployment.promote" in audit
