"""Whole gate runs on real data and a real store (SQLite and PostgreSQL), the way a CI job runs them.

scikit-learn's bundled diabetes data has a group column (`sex`); its label here is a progression above the
median. The champion is a weak model (two columns); a better candidate is accepted and promoted, a worse
one refused, and a candidate that beats the champion on average but was trained on labels biased against
one group is refused by the fairness check alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

import arsenale as ars
from arsenale.cli.main import app
from arsenale.errors import InvalidInput, NotFound
from arsenale.gates.policy import load_policy
from arsenale.gates.runner import evaluate, run_gate
from arsenale.platform import Client
from tests.serving.conftest import shared_artifacts, store  # noqa: F401  (fixtures)

POLICY = """
label = "target"

[[performance]]
metric = "accuracy"
non_inferiority_margin = 0.05

[[performance]]
metric = "roc_auc"
min = 0.6

[[fairness]]
sensitive = "sex"
max_equalized_odds_difference = 0.3

[[slices]]
by = "bmi"
metric = "accuracy"
min = 0.3

[robustness]
noise = 0.01
min_stability = 0.9

[operational]
max_latency_ms_per_row = 2000
max_model_mb = 50
contract_compatible = true

[promote]
alias = "challenger"
"""


class Models:
    def __init__(self) -> None:
        X, target = load_diabetes(return_X_y=True, as_frame=True)
        y = (target > target.median()).astype(int).rename("target")
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)
        pick = ColumnTransformer([("keep", "passthrough", ["age", "s1"])])
        self.weak = Pipeline([("pick", pick), ("lr", LogisticRegression(max_iter=1000))]).fit(X_tr, y_tr)
        self.good = LogisticRegression(max_iter=1000, C=10).fit(X_tr, y_tr)
        # Labels biased against one group: 70% of its positives relabelled negative before training.
        biased = y_tr.copy()
        flip = (X_tr["sex"] > 0) & (biased == 1) & (np.random.default_rng(0).random(len(biased)) < 0.7)
        biased[flip] = 0
        self.unfair = LogisticRegression(max_iter=1000, C=10).fit(X_tr, biased)
        self.X_tr, self.y_tr = X_tr, y_tr
        self.holdout = X_te.assign(target=y_te)


@pytest.fixture(scope="module")
def models() -> Models:
    return Models()


@pytest.fixture
def registry(store: Client, models: Models) -> Client:  # noqa: F811
    """v1 weak @champion, v2 good, v3 unfair, and the holdout as dataset diabetes-holdout@1."""
    for model in (models.weak, models.good, models.unfair):
        ars.register_model("diabetes", model, signature_from=models.X_tr, reference=models.X_tr,
                           labels=models.y_tr)
    ars.set_alias("diabetes", "champion", 1)
    store.datasets.register("diabetes-holdout", models.holdout)
    return store


def _by_name(results: list[Any]) -> dict[str, Any]:
    return {r.name: r for r in results}


def test_a_better_candidate_passes_is_stored_and_promoted(registry: Client, tmp_path: Path) -> None:
    (tmp_path / "gates.toml").write_text(POLICY)
    outcome = run_gate(tmp_path / "gates.toml", "models:/diabetes/2", "models:/diabetes@champion",
                       "dataset:diabetes-holdout", client=registry)
    failed = [f"{r.name}: {r.message}" for r in outcome.results if not r.passed]
    assert outcome.passed, failed
    names = _by_name(outcome.results)
    accuracy = names["performance.accuracy"]
    assert accuracy.interval is not None and accuracy.interval.low > 0 and accuracy.mcnemar is not None
    assert any(n.startswith("fairness.sex.") for n in names) and "slices.bmi.accuracy" in names
    assert {"robustness.noise", "operational.contract"} <= set(names)
    run = outcome.run
    assert (run.name, run.version, run.champion_version, run.dataset) == ("diabetes", 2, 1,
                                                                          "dataset:diabetes-holdout@1")
    assert run.promotion == {"alias": "challenger"} and run.policy == POLICY
    assert registry.registry.resolve("models:/diabetes@challenger").version == 2
    assert registry.gates.list("diabetes", 2)[0].id == run.id
    audit = registry.audit.entries(entity_id="diabetes/2")
    assert [e.action for e in audit if e.action.startswith("gate.")] == ["gate.run", "gate.promote"]


def test_a_worse_candidate_is_refused_and_not_promoted(registry: Client, tmp_path: Path) -> None:
    ars.set_alias("diabetes", "champion", 2)
    outcome = run_gate(POLICY, "models:/diabetes/1", "models:/diabetes@champion", "dataset:diabetes-holdout@1",
                       client=registry)
    accuracy = _by_name(outcome.results)["performance.accuracy"]
    assert not outcome.passed and not accuracy.passed and "may be worse" in accuracy.message
    assert accuracy.interval is not None and accuracy.interval.high < 0
    assert outcome.run.promotion is None
    with pytest.raises(NotFound):
        registry.registry.resolve("models:/diabetes@challenger")


def test_better_on_average_but_unfair_is_refused_by_fairness_alone(registry: Client) -> None:
    outcome = run_gate(POLICY, "models:/diabetes/3", "models:/diabetes@champion", "dataset:diabetes-holdout",
                       client=registry)
    failed = sorted(r.name for r in outcome.results if not r.passed)
    assert failed == ["fairness.sex.equalized_odds_difference"], [r.message for r in outcome.results]
    names = _by_name(outcome.results)
    assert names["performance.accuracy"].passed and names["performance.accuracy"].interval.gain > 0
    assert outcome.run.promotion is None and outcome.run.failures == failed


def test_a_first_model_is_judged_on_absolute_thresholds(registry: Client) -> None:
    policy = load_policy(POLICY)
    ev = evaluate(policy, "models:/diabetes/2", "models:/diabetes@stable", "dataset:diabetes-holdout",
                  client=registry)
    assert ev.champion is None and ev.passed and "no champion yet" in ev.notes[0]
    assert all(r.champion is None for r in ev.results if r.name.startswith("performance."))


@pytest.mark.parametrize(("policy", "candidate", "against", "data", "error", "match"), [
    (POLICY, "models:/diabetes/9", None, "dataset:diabetes-holdout", NotFound, "9"),
    (POLICY, "models:/diabetes/2", "models:/nope@champion", "dataset:diabetes-holdout", NotFound, "nope"),
    (POLICY, "models:/diabetes/2", "models:/diabetes/8", "dataset:diabetes-holdout", NotFound, "8"),
    (POLICY, "models:/diabetes/2", None, "dataset:nope", NotFound, "nope"),
    (POLICY, "models:/diabetes/2", None, "dataset:diabetes-holdout@x", InvalidInput, "number or 'latest'"),
    (POLICY, "models:/diabetes/2", None, "missing.parquet", InvalidInput, "no data file"),
    (POLICY.replace('sensitive = "sex"', 'sensitive = "gender"'), "models:/diabetes/2", None,
     "dataset:diabetes-holdout", InvalidInput, "'gender'.*fairness"),
    (POLICY.replace('label = "target"', 'label = "outcome"'), "models:/diabetes/2", None,
     "dataset:diabetes-holdout", InvalidInput, "no label column 'outcome'"),
    (POLICY.replace("non_inferiority_margin", "non_inferiority"), "models:/diabetes/2", None,
     "dataset:diabetes-holdout", InvalidInput, r"performance\[0\].non_inferiority"),
    (POLICY.replace("min = 0.6", 'min = "high"'), "models:/diabetes/2", None, "dataset:diabetes-holdout",
     InvalidInput, r"performance\[1\].min"),
    ("[[robustnes]]\n", "models:/diabetes/2", None, "dataset:diabetes-holdout", InvalidInput, "robustnes"),
])
def test_bad_input_is_a_clear_error_and_stores_nothing(registry: Client, policy: str, candidate: str,
                                                       against: str | None, data: str, error: type,
                                                       match: str) -> None:
    with pytest.raises(error, match=match):
        run_gate(policy, candidate, against, data, client=registry)
    assert registry.gates.list() == []


def test_data_missing_a_model_input_column(registry: Client, models: Models, tmp_path: Path) -> None:
    path = tmp_path / "holdout.parquet"
    models.holdout.drop(columns=["bp"]).to_parquet(path)
    with pytest.raises(InvalidInput, match="no column 'bp'"):
        run_gate(POLICY, "models:/diabetes/2", None, path, client=registry)


def test_the_command_exits_0_on_pass_and_1_on_fail_and_writes_every_report(registry: Client,
                                                                            tmp_path: Path) -> None:
    (tmp_path / "gates.toml").write_text(POLICY)
    args = ["gate", "run", "--against", "models:/diabetes@champion", "--data", "dataset:diabetes-holdout",
            "--policy", str(tmp_path / "gates.toml")]
    reports = ["--report", str(tmp_path / "gate.md"), "--junit", str(tmp_path / "gate.xml"),
               "--html", str(tmp_path / "gate.html")]
    passed = CliRunner().invoke(app, [*args, "--candidate", "models:/diabetes/2", *reports])
    assert passed.exit_code == 0, passed.output
    assert "gate passed" in passed.output and "promoted: alias challenger" in passed.output
    md = (tmp_path / "gate.md").read_text()
    assert md.startswith("### ✅") and "performance.accuracy" in md
    suite = ET.parse(tmp_path / "gate.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and int(suite.get("tests", "0")) >= 8
    html = (tmp_path / "gate.html").read_text()
    assert "<svg" in html and "fairness.sex.equalized_odds_difference" in html and "http" not in html.split(
        "<body>")[1].split("</main>")[0].replace("http-equiv", "")

    failed = CliRunner().invoke(app, [*args, "--candidate", "models:/diabetes/3", "--no-promote", *reports])
    assert failed.exit_code == 1, failed.output
    assert "gate failed: 1 of" in failed.output
    assert ET.parse(tmp_path / "gate.xml").getroot().find("testsuite").get("failures") == "1"  # type: ignore
    assert (tmp_path / "gate.md").read_text().startswith("### ❌")
    runs = json.loads(CliRunner().invoke(app, ["gate", "list", "--model", "diabetes", "--json"]).stdout)
    assert [(r["version"], r["passed"]) for r in runs] == [(3, False), (2, True)]
    shown = CliRunner().invoke(app, ["gate", "show", str(runs[0]["id"]), "--format", "markdown"])
    assert shown.exit_code == 0 and "fairness.sex.equalized_odds_difference" in shown.stdout

    bad = CliRunner().invoke(app, [*args[:-2], "--policy", str(tmp_path / "none.toml"), "--candidate",
                                   "models:/diabetes/2"])
    assert bad.exit_code == 2 and "no policy file" in bad.output
    unknown = CliRunner().invoke(app, [*args, "--candidate", "models:/diabetes/99"])
    assert unknown.exit_code == 3 and "Traceback" not in unknown.output
    assert len(Client(registry.uri).gates.list()) == 2


def test_a_candidate_whose_contract_breaks_callers_is_refused(registry: Client, models: Models) -> None:
    """A version trained without `bp`: callers of the champion send it, the candidate's contract lacks it."""
    narrow = models.X_tr.drop(columns=["bp"])
    ars.register_model("diabetes", LogisticRegression(max_iter=1000, C=10).fit(narrow, models.y_tr),
                       signature_from=narrow, reference=narrow, labels=models.y_tr)
    outcome = run_gate(POLICY, "models:/diabetes/4", "models:/diabetes@champion", "dataset:diabetes-holdout",
                       client=registry)
    contract = _by_name(outcome.results)["operational.contract"]
    assert not outcome.passed and not contract.passed and "'bp'" in contract.message
    assert outcome.run.promotion is None


def test_the_contract_slices_are_checked_when_the_policy_asks(registry: Client, models: Models) -> None:
    ars.register_model("diabetes", models.good, signature_from=models.X_tr, reference=models.X_tr,
                       labels=models.y_tr, slices=["bmi", "postcode"])
    policy = load_policy('label = "target"\n[contract_slices]\nmetric = "accuracy"\nmin = 0.3\nbins = 3\n')
    ev = evaluate(policy, "models:/diabetes/4", "models:/diabetes@champion", "dataset:diabetes-holdout",
                  client=registry)
    assert [r.name for r in ev.results] == ["slices.bmi.accuracy"] and ev.passed
    assert len(ev.results[0].details["slices"]) == 3
    assert any("'postcode' is not a column" in n for n in ev.notes)
    strict = load_policy('label = "target"\n[contract_slices]\nmetric = "accuracy"\nmin = 0.99\n')
    assert not evaluate(strict, "models:/diabetes/4", None, "dataset:diabetes-holdout", client=registry).passed
    with pytest.raises(InvalidInput, match="contract_slices"):
        load_policy('[contract_slices]\nmetric = "accuracy"\n')  # judges nothing
