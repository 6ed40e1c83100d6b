"""Serving fixtures: real models registered in an isolated store, and apps built on them.

Models are fitted once per session; each test registers what it needs in its own store (SQLite, and
PostgreSQL for the tests that touch deployments), because a model version is only servable from the
store that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import arsenale as ars
from arsenale.platform import Client


@dataclass(frozen=True)
class Fitted:
    X: pd.DataFrame
    y: pd.Series
    model: Any


@pytest.fixture(scope="session")
def cancer() -> Fitted:
    """Logistic regression on the breast-cancer data: 30 float columns, a binary label."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return Fitted(X, y, LogisticRegression(max_iter=5000).fit(X, y))


@pytest.fixture(scope="session")
def cancer_v2(cancer: Fitted) -> Fitted:
    """A weaker model on the same data, so two versions disagree on some rows."""
    cols = list(cancer.X.columns[:3])
    model = Pipeline([("pick", ColumnTransformer([("keep", "passthrough", cols)])),
                      ("lr", LogisticRegression(max_iter=5000, C=0.001))]).fit(cancer.X, cancer.y)
    return Fitted(cancer.X, cancer.y, model)


@pytest.fixture(scope="session")
def pets() -> Fitted:
    """A model with a categorical string column, a float and an int."""
    rng = np.random.default_rng(7)
    n = 300
    X = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], n), "size": rng.normal(10, 3, n),
                      "legs": rng.integers(2, 5, n).astype("int64")})
    y = pd.Series(((X["color"] == "red") ^ (X["size"] > 10)).astype(int), name="label")
    encode = ColumnTransformer([("color", OneHotEncoder(handle_unknown="ignore"), ["color"])],
                               remainder="passthrough")
    model = Pipeline([("enc", encode), ("lr", LogisticRegression(max_iter=5000))]).fit(X, y)
    return Fitted(X, y, model)


@pytest.fixture(scope="session")
def shared_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One folder for the session: the SDK caches one client per store URI, and the PostgreSQL URI is
    # the same in every test.
    return tmp_path_factory.mktemp("serving-artifacts")


@pytest.fixture
def store(store_uri: str, shared_artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> Client:
    """A client on a fresh store (SQLite and PostgreSQL) that `ars.register_model` writes to as well."""
    monkeypatch.setenv("ARSENALE_URI", store_uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(shared_artifacts))
    return ars.get_client()


@pytest.fixture
def local_store() -> Client:
    """The embedded store of the test's own ARSENALE_HOME (SQLite), for tests that need no deployment."""
    return ars.get_client()


def register(name: str, fitted: Fitted) -> int:
    return ars.register_model(name, fitted.model, signature_from=fitted.X, reference=fitted.X,
                              labels=fitted.y).version


def row(fitted: Fitted, i: int = 0) -> dict[str, Any]:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in fitted.X.iloc[i].to_dict().items()}
