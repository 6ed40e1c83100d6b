"""The model registry's dashboard pages through FastAPI's TestClient, on real scikit-learn models.

Two logistic regressions on the breast-cancer data are trained in tracked runs, logged and registered with
the fluent API (so they carry a contract, a reference profile and lineage); then aliases and stages are moved
by two people with reasons, and a model with hostile text everywhere is registered through the service.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import arsenale as ars
from arsenale.config import get_settings
from arsenale.platform import Client
from arsenale.registry.fluent import log_model, register_model
from arsenale.server.dashboard import install
from arsenale.server.dashboard_registry import frequency_sparkline, histogram_sparkline, metric_columns

MODEL = "breast-cancer"
EVIL = "<img src=x onerror=alert(1)>"
EVIL_TEXT = "<script>alert(2)</script>"


@dataclass
class Registry:
    """What `seed_registry` made: the platform client and the run behind each version."""

    client: Client
    runs: dict[int, str] = field(default_factory=dict)  # version of MODEL -> run id
    experiment_id: str = ""


def breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X[["mean radius", "mean texture", "mean smoothness", "worst concavity"]].copy()
    bands = pd.cut(X["mean radius"], [0, 12, 16, 100], labels=["small", "medium", "large"])
    X["size band"] = bands.astype(str)
    return X, y


def seed_registry() -> Registry:
    """Register two real models from tracked runs, then move aliases and stages, in the store that the
    settings (ARSENALE_HOME) name."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    numeric = [c for c in X.columns if c != "size band"]
    out = Registry(ars.get_client())
    for c in (0.05, 1.0):
        with ars.start_run(experiment="breast-cancer", run_name=f"logreg-C{c}", params={"C": c}) as run:
            model = make_pipeline(
                ColumnTransformer([("num", StandardScaler(), numeric),
                                   ("cat", OneHotEncoder(handle_unknown="ignore"), ["size band"])]),
                LogisticRegression(C=c, max_iter=1000),
            ).fit(X_train, y_train)
            metrics = {"test_auc": float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])),
                       "accuracy": float(accuracy_score(y_test, model.predict(X_test)))}
            ars.log_metrics(metrics)
            uri = log_model(model, "model", signature_from=X_train, labels=y_train, metrics=metrics,
                            slices=["size band == 'large'"])
            mv = register_model(MODEL, uri, description=f"logistic regression, C={c}")
            out.runs[mv.version] = run.run_id
            out.experiment_id = run.info.experiment_id

    settings = get_settings()
    alice = Client(out.client.uri, artifacts=settings.resolved_artifacts(), actor="alice").registry
    bob = Client(out.client.uri, artifacts=settings.resolved_artifacts(), actor="bob").registry
    alice.set_alias(MODEL, "champion", 1, reason="first model above 0.95 AUC")
    alice.transition_stage(MODEL, 1, "Production", reason="go live")
    alice.set_alias(MODEL, "challenger", 2, reason="shadow it for a week")
    bob.set_alias(MODEL, "champion", 2, reason="v2 wins the shadow week on AUC")
    bob.transition_stage(MODEL, 2, "Production", archive_existing=True, reason="promote the champion")
    bob.delete_alias(MODEL, "challenger", reason="promoted, nothing to challenge")
    return out


def seed_evil(client: Client, tmp: Path) -> None:
    """A model whose every user-written text is markup, registered through the service without a run."""
    weights = tmp / "weights.bin"
    weights.write_bytes(b"\x00" * 64)
    api = client.registry
    api.create_model(EVIL, description=EVIL_TEXT, tags={"owner": "<b>me</b>"})
    digest, size = api.upload_file(weights)
    api.create_version(EVIL, files=[{"path": "<i>w</i>.bin", "digest": digest, "size": size}],
                       flavor="pyfunc", flavor_meta={},
                       contract={"metrics": {EVIL_TEXT: 1.0}, "slices": [EVIL_TEXT],
                                 "inputs": {"kind": "dataframe", "shape": [None, 1], "columns": [
                                     {"name": EVIL_TEXT, "dtype": "category", "categories": ["<b>x</b>"]}]}},
                       description=EVIL_TEXT, tags={"note": EVIL_TEXT})
    api.set_alias(EVIL, "champion", 1, reason=EVIL_TEXT)


@dataclass
class Site:
    http: TestClient
    reg: Registry


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    reg = seed_registry()
    app = FastAPI()
    app.state.client = reg.client
    install(app)
    with TestClient(app) as http:
        yield Site(http, reg)


def text_of(html: str) -> str:
    """The page's text with tags dropped and whitespace collapsed, for reading sentences."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


# ---- /models ----------------------------------------------------------------------------------------------


def test_models_page_lists_models_with_latest_version_aliases_and_stages(site: Site) -> None:
    r = site.http.get("/models")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert f'<a href="/models/{MODEL}">{MODEL}</a>' in html
    assert f'href="/models/{MODEL}/versions/2">v2</a>' in html  # latest
    assert re.search(rf'<a class="alias" href="/models/{MODEL}/versions/2"[^>]*>@champion', html)
    assert "@challenger" not in html  # removed
    assert '<span class="stage stage-production">Production</span>' in html
    assert '<span class="stage stage-archived">Archived</span>' in html
    assert 'href="/models"' in html  # the nav link


def test_models_page_without_models_shows_a_hint(tmp_path: Path) -> None:
    app = FastAPI()
    app.state.client = Client(f"sqlite:///{tmp_path / 'a.db'}", artifacts=str(tmp_path / "art"), actor="t")
    install(app)
    with TestClient(app) as http:
        r = http.get("/models")
    assert r.status_code == 200 and "No registered models yet" in r.text


# ---- /models/{name} ----------------------------------------------------------------------------------------


def test_model_page_shows_versions_with_stage_aliases_run_and_metrics(site: Site) -> None:
    r = site.http.get(f"/models/{MODEL}")
    assert r.status_code == 200
    table = r.text.split('id="versions-table"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)[1:]
    assert [re.search(r">v(\d+)</a>", row).group(1) for row in rows] == ["2", "1"]  # type: ignore[union-attr]
    v2, v1 = rows
    assert "stage-production" in v2 and "stage-archived" in v1
    assert "@champion" in v2 and "@champion" not in v1
    assert f'href="/runs/{site.reg.runs[2]}"' in v2 and ">logreg-C1.0</a>" in v2
    assert f'href="/runs/{site.reg.runs[1]}"' in v1 and ">logreg-C0.05</a>" in v1
    assert "sklearn" in v1
    # key metrics from the contract, one column each
    head = table.split("</thead>")[0]
    assert '<th class="num metric">accuracy</th>' in head and '<th class="num metric">test_auc</th>' in head
    auc = site.reg.client.registry.get_version(MODEL, 2).contract["metrics"]["test_auc"]
    assert f'<td class="num">{auc:.6g}</td>' in v2


def test_history_shows_who_moved_which_alias_from_where_to_where_and_why(site: Site) -> None:
    html = site.http.get(f"/models/{MODEL}").text
    history = html.split('id="history"')[1]
    rows = [text_of(row) for row in re.findall(r'<tr data-kind="[^"]+">(.*?)</tr>', history, re.DOTALL)]
    # newest first; every move with its actor and reason
    assert any("bob" in row and "@champion v1 → v2" in row and "v2 wins the shadow week on AUC" in row
               for row in rows), rows
    assert any("alice" in row and "@champion new → v1" in row and "first model above 0.95 AUC" in row
               for row in rows), rows
    assert any("bob" in row and "@challenger v2 → removed" in row and "promoted, nothing to challenge" in row
               for row in rows), rows
    assert any("bob" in row and "stage v2 None → Production" in row and "promote the champion" in row
               for row in rows), rows
    assert any("stage v1 Production → Archived" in row and "archived by the transition of version 2" in row
               for row in rows), rows
    assert sum("registered" in row for row in rows) == 2
    kinds = re.findall(r'<tr data-kind="([^"]+)">', history)
    assert kinds[0] == "alias_removed" and kinds[-1] == "register"

    aliases = text_of(html.split('id="aliases"')[1].split("</section>")[0])
    assert "@champion v2 moved" in aliases and "by bob: v2 wins the shadow week on AUC" in aliases


# ---- /models/{name}/versions/{version} ---------------------------------------------------------------------


def test_version_page_shows_the_contract_schema_metrics_slices_and_profile(site: Site) -> None:
    r = site.http.get(f"/models/{MODEL}/versions/1")
    assert r.status_code == 200
    html = r.text
    inputs = html.split('id="inputs"')[1].split("</section>")[0]
    head = re.findall(r"<th>([^<]+)</th>", inputs.split("</thead>")[0])
    assert head == ["Name", "Dtype", "Nullable", "Range", "Categories"]
    rows = [text_of(row) for row in re.findall(r"<tr>(.*?)</tr>", inputs.split("<tbody>")[1], re.DOTALL)]
    assert [row.split(" float")[0].split(" string")[0] for row in rows] == list(breast_cancer()[0].columns)
    assert re.fullmatch(r"mean radius float no [\d.]+ – [\d.]+", rows[0]), rows[0]
    assert rows[-1] == "size band string no large medium small"
    outputs = html.split('id="outputs"')[1].split("</section>")[0]
    assert "prediction" in outputs and ">int</span>" in outputs
    metrics = text_of(html.split('id="metrics"')[1].split("</table>")[0])
    assert "accuracy" in metrics and "test_auc" in metrics
    assert "<code>size band == &#39;large&#39;</code>" in html
    # the reference profile: one row per feature plus the label, each with a histogram drawn as SVG bars
    profile = html.split('id="profile"')[1].split("</section>")[0]
    assert "398 rows" in text_of(profile)
    assert profile.count('<svg class="spark"') == 6
    assert ">label</span>" in profile
    counts = [int(n) for n in re.findall(r"<title>[^<]*?: (\d+)</title>", profile.split("worst concavity")[1]
                                         .split("</svg>")[0])]
    assert len(counts) == 20 and sum(counts) == 398
    # files: path, size and the digest's prefix
    mv = site.reg.client.registry.get_version(MODEL, 1)
    digest = mv.files[0].digest
    assert f'title="{digest}">{digest[:12]}…</span>' in html
    assert mv.files[0].path in html


def test_lineage_links_the_run_and_shows_data_code_and_environment(site: Site) -> None:
    html = site.http.get(f"/models/{MODEL}/versions/2").text
    graph = html.split('id="lineage"')[1].split('<section class="card"')[0]
    run_id = site.reg.runs[2]
    assert f'<a class="lin-run-link" href="/runs/{run_id}">logreg-C1.0</a>' in graph
    assert f'href="/experiments/{site.reg.experiment_id}">breast-cancer</a>' in graph
    lineage = site.reg.client.registry.lineage(MODEL, 2)
    fingerprint = lineage.data[0]["fingerprint"]
    assert f'title="{fingerprint}">{fingerprint[:12]}' in graph
    text = text_of(graph)
    assert "Data fingerprint" in text and "398 rows" in text
    if "git_commit" in lineage.code:  # collected from the checkout the tests run in
        assert f'title="{lineage.code["git_commit"]}">{lineage.code["git_commit"][:12]}' in graph
        assert ("dirty" in text) or ("clean" in text)
    import platform

    assert f"python {platform.python_version()}" in text
    assert f"packages {lineage.environment['packages_hash'][:12]}" in text
    assert "sklearn " + lineage.environment["sklearn_version"] in text
    assert "C 1.0" in text  # the run's parameters


def test_the_run_page_links_to_the_versions_registered_from_it(site: Site) -> None:
    html = site.http.get(f"/runs/{site.reg.runs[2]}").text
    assert f'<a class="model-version-link" href="/models/{MODEL}/versions/2">{MODEL} v2</a>' in html
    assert "/versions/1" not in html
    assert '<span class="alias">@champion</span>' in html
    # a run with no registered model shows no such row
    other = site.reg.client.tracking.create_run(site.reg.experiment_id, run_name="unregistered")
    assert "Registered as" not in site.http.get(f"/runs/{other.info.run_id}").text


def test_a_version_without_a_run_or_contract_still_renders(site: Site, tmp_path: Path) -> None:
    api = site.reg.client.registry
    path = tmp_path / "m.bin"
    path.write_bytes(b"m")
    digest, size = api.upload_file(path)
    files = [{"path": "m.bin", "digest": digest, "size": size}]
    api.create_version("bare", files=files, flavor="pyfunc", flavor_meta={})
    html = site.http.get("/models/bare/versions/1").text
    assert "No run recorded" in html and "No data recorded" in html
    assert "Not recorded" in html and "No reference profile" in html
    broken = api.create_version("bare", files=files, flavor="pyfunc", flavor_meta={},
                                contract={"inputs": {"columns": "not a list"}})
    r = site.http.get(f"/models/bare/versions/{broken.version}")
    assert r.status_code == 200 and "This contract cannot be read" in r.text


# ---- errors and escaping -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/models/nope",
    "/models/nope/versions/1",
    f"/models/{MODEL}/versions/99",
    f"/models/{MODEL}/versions/0",
    f"/models/{MODEL}/versions/abc",
    f"/models/{MODEL}/versions/-1",
    "/models/a@b",
    "/models/%20padded",
])
def test_unknown_models_and_versions_are_a_404_page(site: Site, path: str) -> None:
    r = site.http.get(path)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "Not found" in r.text and 'role="alert"' in r.text


def test_everything_user_written_is_escaped(site: Site, tmp_path: Path) -> None:
    seed_evil(site.reg.client, tmp_path)
    from urllib.parse import quote

    name = quote(EVIL, safe="")
    pages = [site.http.get("/models"), site.http.get(f"/models/{name}"),
             site.http.get(f"/models/{name}/versions/1")]
    for r in pages:
        assert r.status_code == 200
        assert "<img src=x" not in r.text
        assert "<script>alert" not in r.text
        assert "<b>" not in r.text and "<i>w</i>" not in r.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[0].text
    assert f'href="/models/{quote(EVIL, safe="/")}"' in pages[0].text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in pages[1].text  # description and alias reason
    assert "&lt;b&gt;x&lt;/b&gt;" in pages[2].text  # a category


# ---- helpers --------------------------------------------------------------------------------------------


def test_sparklines_scale_bars_to_the_tallest_bin() -> None:
    spark = histogram_sparkline([0, 1, 2, 3], [5, 10, 0])
    assert spark is not None
    heights = [b.height for b in spark.bars]
    assert heights[1] == spark.height - 1 and heights[0] == pytest.approx(heights[1] / 2) and heights[2] == 0
    assert spark.bars[1].label == "1 – 2: 10"
    assert histogram_sparkline([0, 1], [0]) is None  # nothing to draw
    assert histogram_sparkline([0, 1, 2], [1]) is None  # malformed
    freq = frequency_sparkline({"a": 1, "b": 3})
    assert freq is not None and [b.label for b in freq.bars] == ["b: 3", "a: 1"]


def test_metric_columns_prefer_shared_metrics(site: Site) -> None:
    versions = site.reg.client.registry.list_versions(MODEL)
    assert metric_columns(versions) == ["accuracy", "test_auc"]
    assert metric_columns(versions, limit=1) == ["accuracy"]


def test_registered_versions_works_through_the_public_interface_alone(site: Site) -> None:
    """A remote registry has no store: the run page's links then come from listing models and versions."""
    from types import SimpleNamespace

    from arsenale.server.dashboard_registry import registered_versions

    local = site.reg.client.registry

    class Remote:  # only the methods every RegistryAPI has
        list_models = staticmethod(local.list_models)
        list_versions = staticmethod(local.list_versions)

    client = SimpleNamespace(registry=Remote())
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(client=client)))
    found = registered_versions(request, site.reg.runs[1])
    assert [(v.name, v.version) for v in found] == [(MODEL, 1)]
    assert registered_versions(request, "0" * 32) == []


def test_version_page_lists_gate_runs_and_opens_their_reports(site: Site) -> None:
    from arsenale.gates.results import CheckResult
    from arsenale.gates.stats import Interval

    gates = site.reg.client.gates
    assert "No gate run yet" in site.http.get(f"/models/{MODEL}/versions/2").text
    passed = gates.record(MODEL, 2, dataset="dataset:holdout@1", policy="[[performance]]", champion_version=1,
                          results=[CheckResult("performance.roc_auc", True, "gain +0.01", 0.99, 0.98,
                                               Interval(0.01, 0.002, 0.02, 0.95, 1000))])
    gates.promote(passed.id, alias="challenger")
    failed = gates.record(MODEL, 2, dataset=EVIL, policy="x", results=[CheckResult(
        "fairness.sex.demographic_parity_difference", False, EVIL_TEXT, 0.4,
        details={"groups": [{"group": EVIL, "candidate": 0.1}]})])
    card = site.http.get(f"/models/{MODEL}/versions/2").text.split('id="gate-runs"')[1].split("</section>")[0]
    rows = [text_of(r) for r in re.findall(r"<tr>(.*?)</tr>", card.split("<tbody>")[1], re.DOTALL)]
    assert rows[0].startswith(f"#{failed.id} failed no champion {EVIL} fairness.sex.demographic_parity_difference")
    assert rows[1].startswith(f"#{passed.id} passed v1 dataset:holdout@1 none alias challenger")
    assert EVIL not in card and htmllib.escape(EVIL) in card
    assert site.http.get(f"/models/{MODEL}/versions/1").text.count('href="/gates/') == 0

    report = site.http.get(f"/gates/{passed.id}")
    assert report.status_code == 200 and "<svg" in report.text and "promoted: alias challenger" in report.text
    hostile = site.http.get(f"/gates/{failed.id}").text
    assert EVIL not in hostile and EVIL_TEXT not in hostile and htmllib.escape(EVIL_TEXT) in hostile
    for bad in ("999", "abc", "0", "1%2F..%2F1"):
        assert site.http.get(f"/gates/{bad}").status_code == 404, bad
