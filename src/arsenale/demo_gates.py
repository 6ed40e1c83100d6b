"""The demo's CI gate chapter: the sweep's runner-up must earn `@challenger` from a gate against the champion
on the held-out rows (performance with a confidence interval, slices, robustness, operational budgets), and
two candidates of a second model are refused: one worse than its simple champion, one better on average but
unfair to one group.

The second model reads scikit-learn's bundled diabetes data, the bundled dataset with a group column (`sex`);
its label is a disease progression above the median. Every gate run is stored with the version it judged,
audited, and written as the Markdown, JUnit and HTML reports a CI job would keep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HOLDOUT = "breast-cancer-holdout"
POLICY = """\
# What the runner-up must pass to become the challenger (and so enter a canary): not materially worse than
# the champion, with 95% confidence, good on every tumour size, robust and within budget.
label = "target"

[[performance]]
metric = "roc_auc"
min = 0.95
non_inferiority_margin = 0.02   # the 95% interval of its gain may not reach below -0.02

[contract_slices]               # the slices the model was registered with: quartiles of "mean radius"
metric = "accuracy"
min = 0.8

[robustness]
noise = 0.01

[operational]
max_latency_ms_per_row = 50
max_model_mb = 20
contract_compatible = true

[promote]
alias = "challenger"
"""
PROGRESSION = "diabetes-progression"
PROGRESSION_POLICY = """\
label = "progressed"

[[performance]]
metric = "accuracy"
non_inferiority_margin = 0.05

[[fairness]]
sensitive = "sex_group"            # a column of the evaluation data the models do not read
max_equalized_odds_difference = 0.3

[promote]
alias = "challenger"
"""


def _print(outcome: Any, label: str) -> None:
    run = outcome.run
    verdict = "PASSED" if run.passed else "REFUSED"
    print(f"  gate run {run.id}: {label} {run.uri} vs {outcome.evaluation.champion.uri} on {run.dataset}: "
          f"{verdict}" + (f", {', '.join(f'@{v}' if k == 'alias' else f'{k} {v}' for k, v in run.promotion.items())}"
                         f" set" if run.promotion else ""))
    for r in outcome.results:
        if r.name.startswith("performance.") or not r.passed:
            print(f"    {'ok  ' if r.passed else 'FAIL'} {r.name}: {r.message[:150]}")
    others = [r.name for r in outcome.results if r.passed and not r.name.startswith("performance.")]
    if others:
        print(f"    ok   {', '.join(others)}")


def _write_reports(outcome: Any, folder: Path, stem: str) -> Path:
    from arsenale.gates.html import render_html
    from arsenale.gates.report import junit_xml, markdown

    ev = outcome.evaluation
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.md").write_text(markdown(ev.title, ev.results), encoding="utf-8")
    (folder / f"{stem}.xml").write_text(junit_xml(ev.title, ev.results), encoding="utf-8")
    html = folder / f"{stem}.html"
    html.write_text(render_html(ev.title, ev.results, notes=ev.notes), encoding="utf-8")
    return html


def gate_challenger(client: Any, model: str, candidate: int, X_test: Any, y_test: Any,
                    features: list[str], folder: Path) -> dict[str, Any]:
    """The runner-up against the champion on the held-out rows; a pass sets @challenger."""
    import pandas as pd

    from arsenale.gates.runner import run_gate

    holdout = pd.DataFrame(X_test, columns=features).assign(target=y_test)
    dataset = client.datasets.register(HOLDOUT, holdout, description="the rows no model trained on")
    policy = folder / "gates.toml"
    folder.mkdir(parents=True, exist_ok=True)
    policy.write_text(POLICY, encoding="utf-8")
    outcome = run_gate(policy, f"models:/{model}/{candidate}", f"models:/{model}@champion",
                       f"dataset:{HOLDOUT}@{dataset.version}", client=client)
    print(f"CI gate ({policy}):")
    _print(outcome, "runner-up")
    html = _write_reports(outcome, folder, "gate-challenger")
    return {"run": outcome.run.id, "passed": outcome.passed, "promotion": outcome.run.promotion,
            "checks": len(outcome.results), "html": str(html)}


def gate_refusals(client: Any, folder: Path) -> dict[str, Any]:
    """A second model's worse and unfair candidates, both refused; neither gets @challenger."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    import arsenale as ars
    from arsenale.gates.runner import run_gate

    X, target = load_diabetes(return_X_y=True, as_frame=True)
    y = (target > target.median()).astype(int).rename("progressed")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)
    def on(columns: list[str]) -> Any:
        return Pipeline([("pick", ColumnTransformer([("keep", "passthrough", columns)])),
                         ("lr", LogisticRegression(max_iter=1000))]).fit(X_tr, y_tr)

    champion = on(["age", "s1"])  # a first, simple model
    worse = on(["sex"])  # a candidate that reads one column and learns next to nothing
    # Trained on labels in which 70% of one group's positives were recorded as negatives.
    biased = y_tr.copy()
    biased[(X_tr["sex"] > 0) & (biased == 1) & (np.random.default_rng(0).random(len(biased)) < 0.7)] = 0
    unfair = LogisticRegression(max_iter=1000, C=10).fit(X_tr, biased)
    versions = {}
    for role, m in (("champion", champion), ("worse", worse), ("unfair", unfair)):
        versions[role] = ars.register_model(PROGRESSION, m, signature_from=X_tr, reference=X_tr, labels=y_tr,
                                            description=f"gate demo: the {role} candidate").version
    ars.set_alias(PROGRESSION, "champion", versions["champion"], reason="the gate demo's champion")
    # The data set stores sex centred and scaled; the holdout also names its two values, for the reports.
    holdout = X_te.assign(progressed=y_te, sex_group=np.where(X_te["sex"] > 0, "sex 2", "sex 1"))
    data = client.datasets.register(f"{PROGRESSION}-holdout", holdout)
    out = {}
    for role in ("worse", "unfair"):
        outcome = run_gate(PROGRESSION_POLICY, f"models:/{PROGRESSION}/{versions[role]}",
                           f"models:/{PROGRESSION}@champion", data.uri, client=client)
        _print(outcome, f"{role} candidate")
        _write_reports(outcome, folder, f"gate-{role}")
        out[role] = {"run": outcome.run.id, "passed": outcome.passed, "failed": outcome.run.failures}
    # The unfair candidate beat the champion on average: only the fairness check stopped it.
    return out
