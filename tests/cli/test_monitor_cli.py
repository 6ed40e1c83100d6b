"""`arsenale monitor` against a temporary SQLite store with a deployed model and logged traffic."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

import arsenale as ars
from arsenale import Client
from arsenale.config import get_settings
from arsenale.serving.inference_log import InferenceLog
from arsenale.tracking.models import now_ms
from tests.cli.test_cli import cli, dump, home, strict_json  # noqa: F401  (`home` is a fixture)


@pytest.fixture
def deployed(home: Path) -> Path:  # noqa: F811
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    ars.register_model("bc", model, signature_from=X, reference=X, labels=y)
    Client().deployments.create("bc-api", "bc/1")
    log = InferenceLog(get_settings().resolved_inference_log(), "bc-api", replica="t")
    start = now_ms() - 60_000
    for i, record in enumerate(X.iloc[:150].to_dict(orient="records")):
        log.log(request_id=f"r{i}", model="bc", version=1, role="route", inputs=[record],
                outputs=[int(model.predict(X.iloc[[i]])[0])], latency_ms=1.0, timestamp_ms=start + i)
        log.feedback(f"r{i}", int(y.iloc[i]), timestamp_ms=start + i + 1)
    log.close()
    return home / "arsenale.db"


def test_create_run_history_report(deployed: Path, tmp_path: Path) -> None:
    assert "no monitors yet" in cli("monitor", "list").stdout
    cli("monitor", "create", "bc-api", "--window", "1h", "--schedule", "*/10 * * * *")
    assert "bc-api" in cli("monitor", "list").stdout
    out = cli("monitor", "run", "bc-api").stdout
    assert "drift_share" in out and "accuracy" in out and "150" in out
    result = strict_json(cli("monitor", "run", "bc-api", "--json").stdout)
    assert result["rows"] == 150 and result["values"]["labelled"] == 150
    history = strict_json(cli("monitor", "history", "bc-api", "--json").stdout)
    assert len(history) == 2
    report = tmp_path / "drift.html"
    assert "wrote" in cli("monitor", "report", "bc-api", "--out", str(report)).stdout
    html = report.read_text()
    HTMLParser().feed(html)
    assert "mean radius" in html and "https://" not in html


def test_errors_exit_with_their_code_and_change_nothing(deployed: Path) -> None:
    cli("monitor", "create", "bc-api")
    before = dump(deployed)
    cli("monitor", "create", "bc-api", code=4)
    cli("monitor", "create", "x", "--deployment", "nope", code=3)
    cli("monitor", "create", "y", "--deployment", "bc-api", "--window", "forever", code=2)
    cli("monitor", "create", "y", "--deployment", "bc-api", "--schedule", "sometimes", code=2)
    cli("monitor", "run", "nope", code=3)
    cli("monitor", "report", "bc-api", code=3)  # has not run yet
    assert "no monitor named 'nope'" in cli("monitor", "history", "nope", code=3).stderr  # not an empty table
    assert "no monitor named 'nope'" in cli("monitor", "report", "nope", code=3).stderr
    assert strict_json(cli("monitor", "history", "bc-api", "--json").stdout) == []  # exists, not run yet
    assert dump(deployed) == before
