"""Champion/challenger: what a shadow would have answered, set beside what was answered.

Shadows are logged under the request id (and row) of the answer they mirror, so pairing is a join on
(request_id, row). For every shadow version this reports how many answers were paired, how often the
two agreed, and — on the rows whose labels have arrived through `/feedback` — the accuracy of both on
exactly the same rows, which is the comparison a promotion decision needs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel

from arsenale.serving.inference_log import read_log


class ShadowComparison(BaseModel):
    shadow: str
    answered_by: dict[str, int]
    paired: int
    agreement: float | None
    labelled: int
    answer_accuracy: float | None
    shadow_accuracy: float | None


def compare_shadows(root: str, deployment: str, *, since_ms: int | None = None,
                    storage_options: Any = None) -> list[ShadowComparison]:
    """One comparison per shadow version seen in the log since `since_ms` (all of it by default)."""
    log = read_log(root, deployment, since_ms=since_ms, role=None, storage_options=storage_options)
    if log.empty:
        return []
    log = log.assign(key=log["model"].astype(str) + "/" + log["version"].astype(str))
    answers = log[log["role"] == "route"][["request_id", "row", "key", "prediction", "label"]]
    shadows = log[log["role"] == "shadow"][["request_id", "row", "key", "prediction"]]
    out = []
    for key, rows in shadows.groupby("key", sort=True):
        pairs = answers.merge(rows, on=["request_id", "row"], suffixes=("", "_shadow"))
        agree = _same(pairs["prediction"], pairs["prediction_shadow"])
        labelled = pairs[pairs["label"].notna()]
        out.append(ShadowComparison(
            shadow=str(key), answered_by={str(k): int(v) for k, v in pairs["key"].value_counts().sort_index().items()},
            paired=len(pairs), agreement=float(agree.mean()) if len(pairs) else None, labelled=len(labelled),
            answer_accuracy=_accuracy(labelled["prediction"], labelled["label"]),
            shadow_accuracy=_accuracy(labelled["prediction_shadow"], labelled["label"])))
    return out


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    """Equal predictions, comparing numbers as numbers and everything else as text."""
    try:
        return pd.to_numeric(a) == pd.to_numeric(b)
    except (TypeError, ValueError):
        return a.astype(str) == b.astype(str)


def _accuracy(predictions: pd.Series, labels: pd.Series) -> float | None:
    return float(_same(predictions, labels).mean()) if len(labels) else None
