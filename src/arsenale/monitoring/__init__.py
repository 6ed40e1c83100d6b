"""Monitoring: is a deployed model still seeing the data it was trained on?

    from arsenale import monitoring
    report = monitoring.drift(reference_df, current_df)        # or a ReferenceProfile, or contract.profile
    report.dataset_drift, report.columns["age"].drifted

    profile = monitoring.reference_profile(train_df)           # once, a few KB per column
    monitoring.drift(profile, current_df)                      # later, without the training data
"""

from arsenale.monitoring.drift import ColumnDrift, DriftReport, drift
from arsenale.monitoring.sketch import CategoricalSketch, NumericSketch, ReferenceProfile, reference_profile
from arsenale.monitoring.stattests import METHODS, Method

__all__ = [
    "METHODS",
    "CategoricalSketch",
    "ColumnDrift",
    "DriftReport",
    "Method",
    "NumericSketch",
    "ReferenceProfile",
    "drift",
    "reference_profile",
]
