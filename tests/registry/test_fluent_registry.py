"""The registry SDK end to end on the embedded store: register, alias, load, refuse what is unsafe."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import arsenale as ars
from arsenale.errors import IntegrityError, InvalidInput, NotFound


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return load_breast_cancer(return_X_y=True)


def test_register_object_from_active_run_then_load_by_every_uri(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    model = LogisticRegression(max_iter=5000).fit(X, y)
    with ars.start_run(experiment="fraud", params={"C": 1.0}) as run:
        ars.log_metric("recall", 0.93)
        mv = ars.register_model("fraud", model, signature_from=X, reference=X, labels=y, slices=["f0"])
    assert mv.version == 1 and mv.run_id == run.run_id and mv.flavor == "sklearn"
    assert mv.contract["metrics"] == {"recall": 0.93} and mv.contract["slices"] == ["f0"]
    assert len(mv.contract["inputs"]["columns"]) == X.shape[1] and mv.contract["profile"]["rows"] == len(X)
    ars.set_alias("fraud", "champion", mv.version, reason="first")
    ars.get_client().registry.transition_stage("fraud", mv.version, "Production")
    for uri in ("models:/fraud/1", "models:/fraud@champion", "models:/fraud/Production", "models:/fraud/latest"):
        loaded = ars.load_model(uri)
        assert (loaded.predict(X) == model.predict(X)).all()
    with pytest.raises(NotFound):
        ars.load_model("models:/fraud@challenger")
    with pytest.raises(InvalidInput):
        ars.load_model("fraud@champion")


def test_logged_model_registers_without_copying(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    with ars.start_run(experiment="fraud") as run:
        uri = ars.log_model(LogisticRegression(max_iter=5000).fit(X, y), "model", signature_from=X)
    assert uri == f"runs:/{run.run_id}/model"
    mv = ars.register_model("fraud", uri)
    run_files = {a.digest for a in ars.get_client().tracking.list_artifacts(run.run_id, "model")}
    assert {f.digest for f in mv.files} <= run_files
    with pytest.raises(InvalidInput):
        ars.register_model("fraud", f"runs:/{run.run_id}/nothing-here/..")
    with pytest.raises(NotFound):
        ars.register_model("fraud", f"runs:/{run.run_id}/missing")


def test_tampered_blob_is_refused_at_load(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, y = data
    mv = ars.register_model("tamper", LogisticRegression(max_iter=5000).fit(X, y))
    blobs = Path(os.environ["ARSENALE_HOME"]) / "artifacts" / "blobs"
    target = blobs / mv.files[0].digest[:2] / mv.files[0].digest[2:]
    os.chmod(target, 0o644)
    target.write_bytes(target.read_bytes()[:-10])  # truncated
    with pytest.raises(IntegrityError):
        ars.load_model("models:/tamper/1", dest=tmp_path / "fresh")
