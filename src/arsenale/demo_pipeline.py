"""The demo's retraining pipeline: dataset version → features → model → evaluation, as cached steps.

Module level so that the worker processes running each step can import it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import arsenale as ars


@ars.step
def load(dataset: str, version: int) -> pd.DataFrame:
    return ars.Dataset(dataset, version=version).to_pandas()


@ars.step
def featurize(frame: pd.DataFrame) -> pd.DataFrame:
    """Every measurement, plus two shape ratios the raw feed does not carry."""
    out = frame.copy()
    out["compactness ratio"] = frame["worst compactness"] / frame["mean compactness"].replace(0, np.nan)
    out["area per radius"] = frame["mean area"] / frame["mean radius"]
    return out.fillna(0.0)


@ars.step(retries=1)
def train(features: pd.DataFrame, C: float = 0.1) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = features.drop(columns="target"), features["target"]
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000)).fit(X, y)


@ars.step
def evaluate(model: Any, features: pd.DataFrame) -> dict:
    from sklearn.metrics import roc_auc_score

    X, y = features.drop(columns="target"), features["target"]
    return {"train_roc_auc": float(roc_auc_score(y, model.predict_proba(X)[:, 1])), "rows": int(len(X))}


@ars.pipeline
def retraining(dataset: str = "breast-cancer", version: int = 1, C: float = 0.1):  # type: ignore[no-untyped-def]
    features = featurize(load(dataset, version))
    return evaluate(train(features, C=C), features)


@ars.pipeline
def retrain_on_drift(evidence: dict | None = None, dataset: str = "breast-cancer", version: int = 1,  # type: ignore[no-untyped-def]
                     C: float = 0.05):
    """What the demo's drift alert runs (the alert's evidence arrives as `evidence` and is kept with the run):
    the retraining steps with stronger regularisation, so loading and features come from the cache."""
    features = featurize(load(dataset, version))
    return evaluate(train(features, C=C), features)
