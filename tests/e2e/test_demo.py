"""`make demo`'s job, run as a test: the whole tracked experiment on the embedded store."""

from __future__ import annotations

import pytest

import arsenale as ars
from arsenale.demo import EXPERIMENT, run_demo
from arsenale.pipelines.service import PipelineService


@pytest.mark.slow
def test_demo_tracks_a_real_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_demo(port=5999)
    printed = capsys.readouterr().out
    assert "Best run:" in printed and "http://127.0.0.1:5999/runs/" in printed
    client = ars.get_client()
    best = client.tracking.get_run(out["best_run_id"])
    assert best.info.parent_run_id == out["parent_run_id"]
    assert best.data.metrics["test_roc_auc"] > 0.95
    children = ars.search_runs(EXPERIMENT, filter=f"attributes.parent_run_id = '{out['parent_run_id']}'")
    assert len(children) == out["runs"] == 10
    paths = {a.path for a in client.tracking.list_artifacts(best.run_id)}
    assert paths == {"model", "plots"}
    champion = client.registry.resolve("models:/breast-cancer-classifier@champion")
    assert champion.run_id == best.run_id and champion.stage.value == "Production"
    assert client.registry.resolve("models:/breast-cancer-classifier@challenger").version == out["challenger"]
    gates = out["gates"]  # the challenger earned its alias from a gate; a worse and an unfair candidate did not
    assert gates["passed"] and gates["promotion"] == {"alias": "challenger"} and gates["checks"] >= 8
    assert client.gates.get(gates["run"]).version == out["challenger"]
    refused = gates["refusals"]
    assert not refused["worse"]["passed"] and "performance.accuracy" in refused["worse"]["failed"]
    assert refused["unfair"]["failed"] == ["fairness.sex_group.equalized_odds_difference"]
    assert "CI gate (" in printed and "REFUSED" in printed
    delivery = out["delivery"]  # the serving chapter's canary, promotion and rollback, replayed from the trail
    assert delivery.rollback_rate.rollbacks >= 1 and delivery.lead_time.count >= 1
    assert delivery.monitoring.production_models >= 1 and "Delivery (from the audit trail)" in printed
    assert out["served_auc"] > 0.95
    assert champion.contract["inputs"]["columns"] and champion.contract["profile"]["rows"] > 0
    lineage = client.registry.lineage("breast-cancer-classifier", champion.version)
    assert lineage.run["run_id"] == best.run_id
    assert {"kind": "dataset", "name": "breast-cancer", "version": str(out["dataset_version"])} in lineage.data
    published = ars.Dataset("breast-cancer", version=out["dataset_version"])
    assert len(published.to_pandas()) == 566 and len(published.quarantined()) == 3
    # the training set came from the feature store, point-in-time; online values equal the training rows
    assert out["features"] == {"rows": 566, "consistent": True}
    assert "measurements@1:mean radius" in best.data.tags["ars.features"]
    assert {"kind": "feature", "name": "measurements:mean radius", "version": "1"} in lineage.data
    assert "Features: view measurements@1 (30 features of a patient)" in printed
    assert out["pipeline_cached"] == 4  # the re-run of the retraining pipeline executed nothing
    assert client.tracking.read_artifact(best.run_id, "plots/roc.png").startswith(b"\x89PNG")
    assert len(client.tracking.get_metric_history(best.run_id, "cv_roc_auc").steps) == 5
    assert client.audit.verify().ok
    serving = out["serving"]
    assert serving["failed"] == 0 and serving["served"] > 100
    assert serving["canary_state"] == "promoted" and "promote" in serving["decisions"]
    assert serving["rollback_ms"] < 2000  # replicas poll the policy revision twice a second
    assert "http://127.0.0.1:5999/deployments/breast-cancer-api" in printed
    actions = [e.action for e in client.audit.entries(entity_type="deployment")]
    assert actions[:2] == ["deployment.create", "deployment.canary"] and actions[-1] == "deployment.rollback"
    assert serving["logged_rows"] >= 0.99 * serving["served"]  # requests and their features are in the inference log
    assert serving["shifted_drifted"] >= 20 and serving["shifted_dataset_drift"]
    assert serving["calm_drifted"] < serving["shifted_drifted"]
    assert serving["skewed"] >= 10  # the recalibrated features show as training/serving skew too
    # the monitor's calm window, then two drifted ones: the rule fired once and ran the retraining pipeline
    calm, first, second = serving["window_drift"]
    assert calm < 0.3 < first and second > 0.3
    [(status, pipeline_run, error)] = serving["alerts"]
    assert status == "firing" and pipeline_run and error is None
    retrained = PipelineService.from_client(client).get_run(pipeline_run)
    assert retrained.status.value == "succeeded" and retrained.trigger.startswith("alert:")
    assert {"alert.rule.create", "alert.fire"} <= {e.action for e in client.audit.entries(entity_type="alert")} | {
        e.action for e in client.audit.entries(entity_type="alert_rule")}
    # the LLMOps chapter: traced answers over a versioned index, an evaluation run, retrieval quality
    llm = out["llm"]
    assert llm["recall"] == 1.0 and llm["groundedness"] > 0.9
    assert client.tracking.get_run(llm["evaluation_run"]).data.metrics["token_f1"] > 0.9
    traces = client.traces.search(name="runbook-answer", limit=100).traces
    assert len(traces) >= 8 and all(t.cost and t.cost > 0 for t in traces)
    assert "LLMOps: index demo-runbook" in printed
    assert llm["window"]["traces"] >= 8 and llm["window"]["score.groundedness"] > 0.9  # the LLM monitor's window
    # the security chapter: a partner's project token sees its own things only; the champion is on legal hold
    security = out["security"]
    assert security["partner_project"] == "partner-lab" and security["partner_lists"] == ["partner-lab-baseline"]
    assert (security["guessed_model"], security["audit_status"]) == (404, 403)
    assert (security["viewer_write"], security["anonymous"]) == (403, 401)
    assert security["signed_by"] == "token:partner-ci"
    assert [h.version for h in client.registry.legal_holds("breast-cancer-classifier")] == [champion.version]
