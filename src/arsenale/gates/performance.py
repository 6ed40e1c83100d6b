"""Performance against the champion: the candidate's own floor, its gain over the champion on the same
rows, and the confidence interval of that gain, so that only a gain the data supports promotes it.

Without a champion (the first model of a name) only the floor applies, and the result says so.
"""

from __future__ import annotations

import numpy as np

from arsenale.gates.metrics import get_metric
from arsenale.gates.policy import PerformanceCheck
from arsenale.gates.results import CheckResult
from arsenale.gates.stats import mcnemar, paired_bootstrap

__all__ = ["CheckResult", "check_performance"]


def check_performance(check: PerformanceCheck, y: np.ndarray, candidate: np.ndarray,
                      champion: np.ndarray | None, *, seed: int = 0) -> CheckResult:
    metric = get_metric(check.metric)
    y = np.asarray(y)
    value = metric(y, np.asarray(candidate))
    name = f"performance.{metric.name}"
    failures = []
    if check.min is not None:
        ok = value >= check.min if metric.higher_is_better else value <= check.min
        if not ok:
            bound = "at least" if metric.higher_is_better else "at most"
            failures.append(f"{metric.name} {value:.4f} is not {bound} {check.min:g}")
    if champion is None:
        note = "no champion yet: absolute threshold only"
        return CheckResult(name, not failures, "; ".join(failures) or f"{metric.name} {value:.4f} ({note})", value)
    base = metric(y, np.asarray(champion))
    interval = paired_bootstrap(metric, y, np.asarray(candidate), np.asarray(champion),
                                resamples=check.resamples, confidence=check.confidence, seed=seed)
    if check.min_gain is not None and interval.gain < check.min_gain:
        failures.append(f"gain {interval.gain:+.4f} over the champion is below {check.min_gain:+g}")
    relative = interval.gain / abs(base) if base else 0.0
    if check.min_relative_gain is not None and relative < check.min_relative_gain:
        failures.append(f"relative gain {relative:+.2%} is below {check.min_relative_gain:+.2%}")
    if interval.low < -check.non_inferiority_margin:
        failures.append(f"the {check.confidence:.0%} interval of the gain [{interval.low:+.4f}, {interval.high:+.4f}] "
                        f"reaches below -{check.non_inferiority_margin:g}: the candidate may be worse")
    test = mcnemar(y, np.asarray(candidate), np.asarray(champion)) if metric.reads == "classes" else None
    summary = (f"{metric.name} {value:.4f} vs champion {base:.4f}: gain {interval.gain:+.4f}, "
               f"{check.confidence:.0%} interval [{interval.low:+.4f}, {interval.high:+.4f}]"
               + (f", McNemar p={test.p_value:.3g}" if test else ""))
    return CheckResult(name, not failures, "; ".join([summary, *failures]), value, base, interval, test)
