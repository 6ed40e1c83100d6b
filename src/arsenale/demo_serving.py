"""The demo's serving chapter: the champion behind a deployment, a canary of the challenger driven by the
controller from live traffic, then a rollback timed from the call to the first answer of the restored version.

The server runs in this process (uvicorn on a background thread) exactly as `arsenale serve --deployment`
runs it; traffic is the held-out test rows sent as Open Inference Protocol V2 requests, each followed by
its label through `/feedback`, so the inference log holds delayed labels as production would.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from typing import Any

DEPLOYMENT = "breast-cancer-api"
MONITOR = "breast-cancer-drift"
WINDOW_S = 3  # short windows, so that the demo sees two of them drift in a few seconds
RULE = "drift_share > 0.3 for 2 windows"
RETRAIN = "arsenale.demo_pipeline:retrain_on_drift"
RECALIBRATED = 20  # the "mean …" and "… error" measurements read 30% high after a device recalibration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """uvicorn on a thread, stopped on exit."""

    def __init__(self, app: Any, ready_path: str = "/v2/health/ready") -> None:
        import uvicorn

        self.ready_path = ready_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="demo-serving")

    def __enter__(self) -> _Server:
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}{self.ready_path}", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the demo's server did not become ready at {self.ready_path}")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class _Traffic:
    """Four callers sending test rows (and their labels) until stopped; counts answers per version."""

    def __init__(self, url: str, model: str, X: Any, y: Any) -> None:
        self.url, self.model, self.X, self.y = url, model, X, y
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self.scale = 1.0  # applied to the first RECALIBRATED features: a drifting input feed
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._call, args=(w,), daemon=True) for w in range(4)]

    def _call(self, worker: int) -> None:
        import httpx

        n = len(self.X)
        with httpx.Client(base_url=self.url, timeout=10) as http:
            i = worker
            while not self.stop.is_set():
                i = (i + 4) % n
                row = self.X[i].tolist()
                if self.scale != 1.0:
                    row[:RECALIBRATED] = [v * self.scale for v in row[:RECALIBRATED]]
                body = {"inputs": [{"name": "input", "shape": [1, self.X.shape[1]], "datatype": "FP64",
                                    "data": row}]}
                try:
                    r = http.post(f"/v2/models/{self.model}/infer", json=body)
                    if r.status_code != 200:
                        self.failures.append(f"{r.status_code} {r.text[:120]}")
                        continue
                    self.versions[r.headers["x-model-version"]] += 1
                    http.post("/feedback", json={"request_id": r.headers["x-request-id"], "label": int(self.y[i])})
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> _Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)

    def first_answer_from(self, version: str, timeout: float = 10.0) -> float:
        """Seconds until `version` answers a request that started after now."""
        start = time.perf_counter()
        seen = self.versions[version]
        while self.versions[version] <= seen + 4:  # +4: requests already in flight when we started
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"{version} did not answer within {timeout:.0f} s")
            time.sleep(0.005)
        return time.perf_counter() - start


def serve_and_roll_out(client: Any, model: str, X_test: Any, y_test: Any, port: int) -> dict[str, Any]:
    from arsenale.config import get_settings
    from arsenale.serving.app import create_serving_app
    from arsenale.serving.canary import CanaryController

    deployments = client.deployments
    if DEPLOYMENT in {d.name for d in deployments.list()}:
        deployments.delete(DEPLOYMENT, reason="the demo starts its deployment afresh")
    dep = deployments.create(DEPLOYMENT, f"{model}@champion", description="the demo's breast-cancer classifier",
                             reason="first release of the sweep's champion")
    champion = dep.policy.routes[0].key
    challenger = f"{model}/{client.registry.resolve(f'models:/{model}@challenger').version}"
    app = create_serving_app(client, deployment=DEPLOYMENT, replica="demo")
    controller = CanaryController(deployments, owner="demo", inference_log_root=get_settings().resolved_inference_log())
    with _Server(app) as server, _Traffic(server.url, model, X_test, y_test) as traffic:
        controller.start([DEPLOYMENT], every_s=0.25)
        time.sleep(1.0)
        deployments.start_canary(DEPLOYMENT, f"{model}@challenger", steps=[20, 50, 100], interval_s=1.0,
                                 min_requests=40, max_error_rate=0.01, max_p99_ms=250,
                                 reason="challenger: second-best cross-validated ROC AUC")
        deadline = time.monotonic() + 60
        while True:
            plan = deployments.get(DEPLOYMENT).policy.canary
            if plan is None or plan.state != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        controller.stop()
        state = plan.state if plan else "ended"
        if state == "running":
            deployments.rollback(DEPLOYMENT, reason="the demo's rollout took too long")
        time.sleep(0.6)
        t0 = time.perf_counter()
        rolled = deployments.rollback(DEPLOYMENT, reason="rehearsing an instant rollback")
        restored = rolled.policy.routes[0].key
        traffic.first_answer_from(restored)
        rollback_s = time.perf_counter() - t0
        time.sleep(0.3)
        drift = _monitor_and_alert(client, app, traffic)
    from arsenale.serving.inference_log import read_log

    logged = len(read_log(client.monitors.root, DEPLOYMENT, role="route"))  # all written: the server has stopped
    decisions = list(reversed(deployments.decisions(DEPLOYMENT, 50)))
    status = deployments.status(DEPLOYMENT, since=0)
    print(f"Serving {DEPLOYMENT!r} at {server.url} (Open Inference Protocol V2): champion {champion}")
    print(f"  canary of the challenger {challenger}: {state}")
    for d in decisions:
        if d.action != "wait":
            print(f"    {d.action:8} at {d.step:>3g}%  {d.reason}")
    for v in status.versions:
        print(f"    {v.model}/{v.version}: {v.requests} requests, {v.errors} errors, p99 {v.p99_ms:g} ms")
    print(f"  rollback to {restored}: first answer from it {1000 * rollback_s:.0f} ms after the call; "
          f"{sum(traffic.versions.values())} requests served, {len(traffic.failures)} failed")
    _print_monitoring(drift)
    return {"deployment": DEPLOYMENT, "canary_state": state, "rollback_ms": 1000 * rollback_s,
            "served": sum(traffic.versions.values()), "failed": len(traffic.failures),
            "decisions": [d.action for d in decisions], "logged_rows": logged,
            "skewed": drift["skewed"], "calm_drifted": drift["runs"][0].values["drifted_columns"],
            "shifted_drifted": drift["runs"][-1].values["drifted_columns"],
            "shifted_dataset_drift": bool(drift["runs"][-1].values["dataset_drift"]),
            "window_drift": [r.values["drift_share"] for r in drift["runs"]], "monitor": MONITOR,
            "alerts": [(a.status, a.pipeline_run_id, a.pipeline_error) for a in drift["alerts"]]}


def _monitor_and_alert(client: Any, app: Any, traffic: _Traffic) -> dict[str, Any]:
    """A monitor on the deployment and an alert rule that retrains: one calm window, then the feed drifts.

    The monitor compares each window of logged traffic with the answering version's training profile (kept in
    its contract: the training data is not read again); the rule fires on the second drifted window in a row,
    which runs the retraining pipeline with the alert's evidence.
    """
    from arsenale.tracking.models import now_ms

    monitors = client.monitors
    if MONITOR in {m.name for m in monitors.list()}:
        monitors.delete(MONITOR)  # its rules and alerts go with it
    monitors.create(MONITOR, DEPLOYMENT, window=f"{WINDOW_S}s", schedule="*/10 * * * *")
    rule = monitors.alerts.add_rule(MONITOR, RULE, notify=["log"], trigger_pipeline=RETRAIN, severity="critical")

    def window() -> Any:
        time.sleep(WINDOW_S)
        app.flush()  # the inference log is otherwise written every few seconds
        return monitors.run(MONITOR, now=now_ms())

    runs = [window()]
    traffic.scale = 1.3
    time.sleep(0.2)  # requests already in flight finish unscaled
    runs += [window(), window()]
    traffic.scale = 1.0
    alerts = monitors.alerts.list_alerts(MONITOR)
    from arsenale.pipelines.service import PipelineService

    pipelines = PipelineService.from_client(client)
    retrained = {a.pipeline_run_id: pipelines.get_run(a.pipeline_run_id).status.value
                 for a in alerts if a.pipeline_run_id}
    skewed = sorted({i["column"] for i in (runs[-1].report or {}).get("quality", {}).get("issues", [])
                     if i.get("kind") == "skew"})
    return {"monitor": MONITOR, "rule": rule.name, "runs": runs, "alerts": alerts, "skewed": len(skewed),
            "retrained": retrained}


def _print_monitoring(m: dict[str, Any]) -> None:
    runs, alerts = m["runs"], m["alerts"]
    print(f"  monitor {m['monitor']!r} ({WINDOW_S} s windows against the champion's training profile), "
          f"rule {m['rule']!r}:")
    for label, run in zip(("calm feed", "recalibrated feed", "recalibrated feed"), runs):
        v = run.values
        fired = [a for a in run.alerts if a.status == "firing"] if run.alerts else []
        print(f"    window of {int(v['rows']):>4} rows, {label:<18} drift share {v['drift_share']:.2f} "
              f"({int(v['drifted_columns'])} features), accuracy "
              f"{'—' if v.get('accuracy') is None else format(v['accuracy'], '.3f')}"
              + ("   -> ALERT fired" if fired else ""))
    for a in alerts:
        print(f"  alert #{a.id} {a.status}: {a.threshold}; evidence: {len(a.evidence.get('drifted_columns', []))} "
              f"drifted features; retraining pipeline run {a.pipeline_run_id or '—'} "
              f"({m['retrained'].get(a.pipeline_run_id, 'not run')})"
              + (f" failed: {a.pipeline_error}" if a.pipeline_error else ""))
    print(f"  the drifted windows also show training/serving skew on {m['skewed']} feature(s), the signature "
          "of a feature computed differently at serving time")
