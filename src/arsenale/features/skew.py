"""Training/serving skew of online features: what a deployment was served against what the offline store
says for the same entity at the same instant.

A deployment with a feature service logs each request's entity keys with the online values the model read.
Asking the offline store for those keys at each request's time gives what a training set would have held;
a difference is skew: a stale online store (events after the last materialization), a bug in one path, or
a source rewritten after the fact. Comparing is exact for non-numbers and within `tolerance` for numbers;
two nulls agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from arsenale.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from arsenale.features.store import FeatureStore

__all__ = ["FeatureSkew", "SkewReport", "serving_skew"]

MAX_EXAMPLES = 10


class FeatureSkew(BaseModel):
    feature: str
    compared: int
    mismatches: int
    max_abs_diff: float | None = None

    @property
    def share(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0


class SkewReport(BaseModel):
    deployment: str
    feature_service: str
    rows: int
    mismatched_rows: int
    features: list[FeatureSkew]
    examples: list[dict[str, Any]]


def _differs(served: pd.Series, offline: pd.Series, tolerance: float) -> tuple[np.ndarray, float | None]:
    a = pd.to_numeric(served, errors="coerce")
    b = pd.to_numeric(offline, errors="coerce")
    numeric = (a.notna() | served.isna()).all() and (b.notna() | offline.isna()).all()
    if numeric:
        x, y = a.to_numpy(float), b.to_numpy(float)
        both_null = np.isnan(x) & np.isnan(y)
        diff = np.abs(x - y)
        bad = ~both_null & ~(diff <= tolerance)
        finite = diff[~np.isnan(diff)]
        return bad, (float(finite.max()) if finite.size else None)
    both_null = served.isna().to_numpy() & offline.isna().to_numpy()
    same = (served.astype(str).to_numpy() == offline.astype(str).to_numpy())
    return ~both_null & ~same, None


def serving_skew(fs: FeatureStore, deployment: str, *, since_ms: int | None = None, until_ms: int | None = None,
                 tolerance: float = 1e-9, max_rows: int = 200_000) -> SkewReport:
    """Compare the online features a deployment served (from its inference log) with point-in-time offline
    values for the same entities at the same times."""
    from arsenale.config import get_settings
    from arsenale.serving.inference_log import read_log

    if fs.remote:
        raise InvalidInput("skew reads the inference log next to the store: run it where the server runs",
                           field="deployment")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise InvalidInput(f"tolerance must be a non-negative number; got {tolerance!r}", field="tolerance")
    service = fs.client.deployments.get(deployment).policy.feature_service
    if service is None:
        raise InvalidInput(f"deployment {deployment!r} reads no feature service", field="deployment")
    plan = fs.plan(service)
    keys = list(dict.fromkeys(k for part in plan.views.values() for k in part.view.join_keys))
    log = read_log(get_settings().resolved_inference_log(), deployment, since_ms=since_ms, until_ms=until_ms)
    if len(log) > max_rows:
        log = log.iloc[-max_rows:]
    missing = [k for k in keys if k not in log.columns]
    if len(log) and missing:
        raise NotFound(f"the inference log of {deployment!r} holds no entity key {missing}: requests logged "
                       "before the deployment read features", field="deployment")
    features = [c for c in plan.columns if c in log.columns]
    if not len(log):
        return SkewReport(deployment=deployment, feature_service=service, rows=0, mismatched_rows=0,
                          features=[FeatureSkew(feature=f, compared=0, mismatches=0) for f in plan.columns],
                          examples=[])
    entity_df = log[keys].reset_index(drop=True).assign(
        event_timestamp=pd.to_datetime(log["timestamp_ms"].to_numpy(), unit="ms", utc=True))
    offline = fs.get_historical_features(entity_df, service)
    served = log.reset_index(drop=True)
    any_bad = np.zeros(len(served), dtype=bool)
    results = []
    for f in features:
        bad, worst = _differs(served[f], offline[f], float(tolerance))
        any_bad |= bad
        results.append(FeatureSkew(feature=f, compared=len(served), mismatches=int(bad.sum()), max_abs_diff=worst))
    examples = []
    for i in np.flatnonzero(any_bad)[:MAX_EXAMPLES]:
        examples.append({"request_id": str(served["request_id"].iloc[i]),
                         "timestamp_ms": int(served["timestamp_ms"].iloc[i]),
                         **{k: _plain(served[k].iloc[i]) for k in keys},
                         "served": {f: _plain(served[f].iloc[i]) for f in features},
                         "offline": {f: _plain(offline[f].iloc[i]) for f in features}})
    return SkewReport(deployment=deployment, feature_service=service, rows=len(served),
                      mismatched_rows=int(any_bad.sum()), features=results, examples=examples)


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value
