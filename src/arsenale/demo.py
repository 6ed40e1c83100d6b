"""`make demo`: one model's life on the embedded store: data, pipeline, tracking, registry, serving, monitoring.

A raw feed of the breast-cancer data that ships with scikit-learn is validated against a schema;
broken rows are quarantined and the clean rows become a versioned dataset, then the features of a patient
in the feature store: the training set is retrieved point-in-time from it, and its online values are
checked against the training rows. A retraining pipeline of
cached steps runs on it twice (the second run executes nothing). Three scikit-learn model families
are swept on the dataset version: 5-fold cross-validation logged per fold, boosting loss per stage,
the fitted model (skops, with its contract) and a ROC plot stored as artifacts. The two best runs
are registered with their contract and lineage; the better one becomes `@champion` (Production),
the other `@challenger`; the champion is loaded back by URI and scored. The champion is then served
behind a deployment, the challenger rolled out as a canary that the controller judges from live traffic,
and the deployment rolled back, timed. A monitor then watches the deployment's logged traffic window by
window; when the input feed drifts for two windows, an alert fires and runs the retraining pipeline with
the evidence. It ends by printing what happened and where to look.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from typing import Any

DATASET = "breast-cancer"
EXPERIMENT = "breast-cancer"
MODEL = "breast-cancer-classifier"


def _sweep() -> list[tuple[str, dict[str, Any]]]:
    grid: list[tuple[str, dict[str, Any]]] = []
    grid += [("logistic_regression", {"C": c}) for c in (0.01, 0.1, 1.0, 10.0)]
    grid += [("random_forest", {"n_estimators": n, "max_depth": d}) for n in (50, 200) for d in (4, None)]
    grid += [("gradient_boosting", {"learning_rate": lr, "n_estimators": 150}) for lr in (0.05, 0.2)]
    return grid


def _model(family: str, params: dict[str, Any]) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if family == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(C=params["C"], max_iter=5000))
    if family == "random_forest":
        return RandomForestClassifier(**params, random_state=0, n_jobs=1)
    return GradientBoostingClassifier(**params, random_state=0)


def _roc_png(y_true: Any, scores: Any, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import RocCurveDisplay

    fig, ax = plt.subplots(figsize=(4.5, 4))
    RocCurveDisplay.from_predictions(y_true, scores, ax=ax, name=title)
    ax.plot([0, 1], [0, 1], "--", color="#999")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _ingest(ars: Any) -> Any:
    """Raw data → validated, versioned dataset: a hand-written schema gates the feed, broken rows are
    quarantined with their reason, the clean rows are published as a version."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer(as_frame=True).frame
    features = [c for c in raw.columns if c != "target"]
    schema = {"columns": [{"name": c, "type": "float", "nullable": False, "min": 0.0} for c in features]
              + [{"name": "target", "type": "int", "nullable": False, "categories": ["0", "1"]}],
              "min_rows": 100}
    feed = raw.copy()
    # The feed arrives with a few broken rows, as feeds do: a sign flip, a missing value, a bad label.
    feed.loc[7, "mean radius"] = -feed.loc[7, "mean radius"]
    feed.loc[42, "mean texture"] = float("nan")
    feed.loc[99, "target"] = 3
    version = ars.register_dataset(DATASET, feed, schema=schema, policy="quarantine",
                                   description="scikit-learn breast cancer, as delivered by the raw feed")
    report = version.validation or {}
    quarantined = ars.Dataset(DATASET, version=version.version).quarantined()
    print(f"Dataset {version.uri}: {version.rows} rows published, {report.get('failing_rows', 0)} quarantined "
          f"({'; '.join(sorted(set(quarantined['_reason'])))}), status {version.status.value}")
    return version


def run_demo(port: int = 5000) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, train_test_split

    import arsenale as ars

    from arsenale.demo_features import build_training_set, materialize_and_check

    started = time.perf_counter()
    dataset = _ingest(ars)
    frame, features, feature_store = build_training_set(ars, dataset)
    X_train, X_test, y_train, y_test = train_test_split(frame[features].to_numpy(), frame["target"].to_numpy(),
                                                        test_size=0.25, stratify=frame["target"], random_state=42)
    print(f"Training on {dataset.uri}'s features: {len(X_train)} training rows, {len(X_test)} test rows, "
          f"{X_train.shape[1]} features")
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    results = []
    with ars.start_run(experiment=EXPERIMENT, run_name="sweep", tags={"kind": "sweep"}) as parent:
        ars.log_params({"dataset": "sklearn.load_breast_cancer", "test_size": 0.25, "cv_folds": 5})
        for family, params in _sweep():
            label = family + "".join(f" {k}={v}" for k, v in params.items())
            with ars.start_run(run_name=label, nested=True, params={"model": family, **params}) as run:
                ars.Dataset(DATASET, version=dataset.version).to_arrow()  # records the input: lineage
                ars.set_tag("ars.features", json.dumps(frame.attrs["arsenale.features"]))
                fold_auc = []
                for fold, (tr, va) in enumerate(folds.split(X_train, y_train)):
                    m = _model(family, params).fit(X_train[tr], y_train[tr])
                    p = m.predict_proba(X_train[va])[:, 1]
                    fold_auc.append(roc_auc_score(y_train[va], p))
                    ars.log_metrics({"cv_roc_auc": fold_auc[-1],
                                     "cv_accuracy": accuracy_score(y_train[va], p > 0.5)}, step=fold)
                model = _model(family, params).fit(X_train, y_train)
                if family == "gradient_boosting":
                    for stage, proba in enumerate(model.staged_predict_proba(X_test)):
                        ars.log_metric("test_log_loss", log_loss(y_test, proba), step=stage)
                scores = model.predict_proba(X_test)[:, 1]
                metrics = {"cv_roc_auc_mean": float(np.mean(fold_auc)), "test_roc_auc": roc_auc_score(y_test, scores),
                           "test_accuracy": accuracy_score(y_test, scores > 0.5),
                           "test_f1": f1_score(y_test, scores > 0.5)}
                ars.log_metrics(metrics)
                ars.log_model(model, "model", signature_from=X_train, reference=X_train, labels=y_train,
                              slices=["mean radius"])
                run.log_bytes(_roc_png(y_test, scores, label), "plots/roc.png")
                results.append((metrics["cv_roc_auc_mean"], metrics["test_roc_auc"], label, run.run_id))
                print(f"  run {run.run_id[:8]}  {label:<48} cv auc {metrics['cv_roc_auc_mean']:.4f}  "
                      f"test auc {metrics['test_roc_auc']:.4f}")
    # The same training as a pipeline of cached steps: the second run finds every step in the cache.
    from arsenale.demo_pipeline import retraining

    first = ars.run_pipeline(retraining, params={"dataset": DATASET, "version": dataset.version, "C": 0.1})
    again = ars.run_pipeline(retraining, params={"dataset": DATASET, "version": dataset.version, "C": 0.1})
    print(f"Pipeline retraining: {len(first.succeeded) + len(first.cached)} steps "
          f"({first.status.value}); re-run with nothing changed: {len(again.cached)} cached, "
          f"{len(again.succeeded)} executed; train roc auc {again.output('evaluate')['train_roc_auc']:.4f}")
    online = materialize_and_check(feature_store, frame, features)
    ranked = ars.search_runs(EXPERIMENT, filter=f"attributes.parent_run_id = '{parent.run_id}'",
                             order_by=["metrics.cv_roc_auc_mean DESC"], max_results=2)
    best, runner_up = ranked[0], ranked[1]
    client = ars.get_client()
    # Registry: both finalists become versions (files re-used from the run, not copied), with lineage.
    challenger = ars.register_model(MODEL, f"runs:/{runner_up.run_id}/model",
                                    description=f"runner-up: {runner_up.info.run_name}")
    champion = ars.register_model(MODEL, f"runs:/{best.run_id}/model",
                                  description=f"best cross-validated ROC AUC: {best.info.run_name}")
    ars.set_alias(MODEL, "champion", champion.version,
                  reason=f"best cross-validated ROC AUC ({best.data.metrics['cv_roc_auc_mean']:.4f})")
    client.registry.transition_stage(MODEL, champion.version, "Production", archive_existing=True,
                                     reason="champion of the sweep")
    # CI gate: the runner-up becomes @challenger (and so enters the canary) only if it passes.
    from arsenale.config import get_settings
    from arsenale.demo_gates import gate_challenger, gate_refusals

    print()
    gate_folder = get_settings().resolved_home() / "gates"
    gated = gate_challenger(client, MODEL, challenger.version, X_test, y_test, features, gate_folder)
    if not gated["passed"]:
        raise RuntimeError(f"the runner-up failed its gate (run {gated['run']}): see {gated['html']}")
    gated["refusals"] = gate_refusals(client, gate_folder)
    loaded = ars.load_model(f"models:/{MODEL}@champion")
    served_auc = roc_auc_score(y_test, loaded.predict_proba(X_test)[:, 1])
    lineage = client.registry.lineage(MODEL, champion.version)
    from arsenale.demo_serving import serve_and_roll_out

    print()
    served = serve_and_roll_out(client, MODEL, X_test, y_test, port)
    from arsenale.demo_llm import run_llm_chapter

    print()
    llm = run_llm_chapter(ars, client)
    from arsenale.demo_security import run_security_chapter

    print()
    security = run_security_chapter(client, MODEL, champion.version)
    audit = client.audit.verify()
    elapsed = time.perf_counter() - started
    print()
    print(f"Tracked {len(results)} runs under the sweep run {parent.run_id} in experiment {EXPERIMENT!r} "
          f"({elapsed:.1f} s).")
    print(f"Best run: {best.info.run_name} ({best.run_id})  "
          f"cv roc auc {best.data.metrics['cv_roc_auc_mean']:.4f}, test roc auc "
          f"{best.data.metrics['test_roc_auc']:.4f}")
    print(f"Registered model {MODEL!r}: v{champion.version} @champion (Production), "
          f"v{challenger.version} @challenger")
    print(f"  loaded models:/{MODEL}@champion back (every file hash-verified): test roc auc "
          f"{served_auc:.4f}")
    inputs = [f"dataset:{d['name']}@{d['version']}" for d in lineage.data if d.get("kind") == "dataset"]
    views = sorted({f"{d['name'].split(':')[0]}@{d['version']}" for d in lineage.data if d.get("kind") == "feature"})
    n_features = sum(d.get("kind") == "feature" for d in lineage.data)
    if views:
        inputs.append(f"{n_features} features of {', '.join(views)}")
    print(f"  lineage: v{champion.version} <- run {lineage.run['run_id'] if lineage.run else '?'} <- data "
          f"{', '.join(inputs) or '?'} <- code {lineage.code.get('git_commit', 'outside git')[:12]}")
    delivery = client.metrics.delivery()
    lead, rollbacks, covered = delivery.lead_time, delivery.rollback_rate, delivery.monitoring
    print(f"Delivery (from the audit trail): lead time from a run's start to production "
          f"{'—' if lead.median_s is None else f'{lead.median_s:.0f} s'} (median of {lead.count}), "
          f"{delivery.deployment_frequency.changes} production changes, rollback rate "
          f"{'—' if rollbacks.rate is None else f'{rollbacks.rate:.0%}'} ({rollbacks.rollbacks} of "
          f"{rollbacks.changes}), {covered.monitored} of {covered.production_models} production models monitored")
    print(f"Store: {client.uri}")
    print(f"Audit trail: {audit.checked} entries, chain {'intact' if audit.ok else 'BROKEN: ' + str(audit.problem)}")
    print()
    print("Look at it:")
    print(f"  .venv/bin/arsenale ui --port {port}        then open http://127.0.0.1:{port}/")
    print(f"  best run in the dashboard:  http://127.0.0.1:{port}/runs/{best.run_id}")
    print(f"  .venv/bin/arsenale runs list {EXPERIMENT} --order-by 'metrics.cv_roc_auc_mean DESC'")
    print(f"  .venv/bin/arsenale runs show {best.run_id}")
    print(f"  model in the dashboard:     http://127.0.0.1:{port}/models/{MODEL}")
    print(f"  gate reports:               {gate_folder}/gate-*.html  (and .md, .xml as CI keeps them)")
    print(f"  .venv/bin/arsenale gate list;  .venv/bin/arsenale gate show {gated['run']}")
    print(f"  delivery metrics:           http://127.0.0.1:{port}/delivery   (.venv/bin/arsenale metrics delivery)")
    print(f"  pipeline runs:              http://127.0.0.1:{port}/pipelines")
    print(f"  features in the dashboard:  http://127.0.0.1:{port}/features")
    print("  .venv/bin/arsenale features list;  .venv/bin/arsenale features get diagnosis --entity patient_id=3")
    print(f"  deployment in the dashboard: http://127.0.0.1:{port}/deployments/{served['deployment']}")
    print(f"  .venv/bin/arsenale deploy status {served['deployment']}")
    print(f"  monitor in the dashboard:   http://127.0.0.1:{port}/monitors/{served['monitor']}")
    print(f"  .venv/bin/arsenale monitor history {served['monitor']}")
    print(f"  .venv/bin/arsenale monitor report {served['monitor']} --out drift.html")
    print(f"  .venv/bin/arsenale alerts list --monitor {served['monitor']}")
    print(f"  LLM traces:                 http://127.0.0.1:{port}/traces   prompts: /prompts/{llm['prompt']}")
    print(f"  tokens, secrets, retention and holds: http://127.0.0.1:{port}/security   "
          "(.venv/bin/arsenale tokens list; .venv/bin/arsenale retention list)")
    print(f"  vector index:               http://127.0.0.1:{port}/indexes/{llm['index']}   evaluations: /evaluations")
    print(f"  .venv/bin/arsenale index drift {llm['index']} --from 1 --to {llm['index_version']};  "
          f".venv/bin/arsenale traces list")
    print(f"  LLM monitor:                http://127.0.0.1:{port}/monitors/{llm['monitor']}   "
          f"(.venv/bin/arsenale monitor history {llm['monitor']})")
    print(f"  .venv/bin/arsenale serve --deployment {served['deployment']} --port 8080   (serve it yourself)")
    print(f"  .venv/bin/arsenale models lineage {MODEL} {champion.version}")
    print(f"  .venv/bin/arsenale models history {MODEL}")
    print("  .venv/bin/arsenale audit verify")
    return {"dataset_version": dataset.version, "pipeline_cached": len(again.cached),
            "parent_run_id": parent.run_id, "best_run_id": best.run_id, "runs": len(results),
            "champion": champion.version, "challenger": challenger.version, "served_auc": served_auc,
            "serving": served, "features": online, "gates": gated, "delivery": delivery, "llm": llm,
            "security": security}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=int(os.environ.get("ARSENALE_PORT", "5000")))
    args = parser.parse_args()
    run_demo(args.port)


if __name__ == "__main__":
    main()
