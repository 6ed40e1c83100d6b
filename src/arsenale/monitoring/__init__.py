"""Monitoring: is a deployed model still seeing the data it was trained on?

    from arsenale import monitoring
    report = monitoring.drift(reference_df, current_df)        # or a ReferenceProfile, or contract.profile
    report.dataset_drift, report.columns["age"].drifted

    profile = monitoring.reference_profile(train_df)           # once, a few KB per column
    monitoring.drift(profile, current_df)                      # later, without the training data
    monitoring.check_quality(contract, current_df)             # missing, out of range, unseen, skew
    monitoring.detect_changes(errors, detector="adwin")        # concept drift in the error stream
    monitoring.performance_by_window(read_log(...), window="1h")   # accuracy once labels arrive
    monitoring.estimate_performance(probabilities)             # before they arrive (assumes calibration)
"""

from arsenale.monitoring.concept import (
    DETECTORS,
    Change,
    ChangeReport,
    EstimateComparison,
    PerformanceEstimate,
    detect_changes,
    estimate_performance,
    estimate_vs_reference,
    performance_by_window,
)
from arsenale.monitoring.drift import ColumnDrift, DriftReport, drift
from arsenale.monitoring.quality import ColumnQuality, QualityIssue, QualityReport, check_quality
from arsenale.monitoring.sketch import CategoricalSketch, NumericSketch, ReferenceProfile, reference_profile
from arsenale.monitoring.stattests import METHODS, Method

__all__ = [
    "DETECTORS",
    "METHODS",
    "CategoricalSketch",
    "Change",
    "ChangeReport",
    "ColumnDrift",
    "ColumnQuality",
    "DriftReport",
    "EstimateComparison",
    "Method",
    "NumericSketch",
    "PerformanceEstimate",
    "QualityIssue",
    "QualityReport",
    "ReferenceProfile",
    "check_quality",
    "detect_changes",
    "drift",
    "estimate_performance",
    "estimate_vs_reference",
    "performance_by_window",
    "reference_profile",
]
