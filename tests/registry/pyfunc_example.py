"""A small model stored with the pyfunc flavor in tests: code plus data, no sklearn base class."""

from __future__ import annotations

from typing import Any

import numpy as np


class ThresholdModel:
    """Scales the input, takes a weighted sum, and calls it 1 above a threshold."""

    def __init__(self, weights: Any, threshold: float, scaler: Any = None) -> None:
        self.weights = np.asarray(weights, dtype=float)
        self.threshold = float(threshold)
        self.scaler = scaler
        self.labels = ["no", "yes"]

    def _score(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if self.scaler is not None:
            X = self.scaler.transform(X)
        return X @ self.weights

    def predict(self, X: Any) -> np.ndarray:
        return (self._score(X) > self.threshold).astype(int)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-(self._score(X) - self.threshold)))
        return np.column_stack([1.0 - p, p])
