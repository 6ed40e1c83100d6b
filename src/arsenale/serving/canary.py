"""The canary controller: move a rollout forward on evidence, and back at the first sign of harm.

`evaluate` is a pure function from a plan and the traffic each version served to a `Decision`, so
every rule can be tested on numbers alone. It judges with significance tests rather than raw rates,
because a few unlucky requests at 5% of traffic are noise and a raw threshold would roll back healthy
versions (or, with a lax threshold, keep broken ones).

The controller looks every few seconds, which is many looks at accumulating data: tested each time at
`alpha`, noise alone would eventually trigger a rollback. A step is therefore judged once, at `alpha`,
when it has `min_requests` requests and has lasted `interval_s`; before that (an interim look) a
rollback needs p < alpha / 50 (the Haybittle-Peto rule), which keeps the overall false-rollback rate
close to alpha while a canary failing half its requests is still stopped after a few dozen.

When a step is judged and an observed rate is over its limit without being significantly so, the
decision is "hold": neither advance on doubtful evidence nor roll back on noise, but wait for more.

`CanaryController` applies decisions to deployments; a lease in the metadata store makes sure that of
several controllers (one per server replica, say) exactly one acts on a deployment at a time.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scipy import stats

from arsenale.errors import Conflict, InvalidInput
from arsenale.serving.models import (
    LATENCY_BUCKETS_MS,
    CanaryPlan,
    Decision,
    ModelRef,
    VersionSummary,
    quantile_ms,
)
from arsenale.serving.service import DeploymentAPI
from arsenale.tracking.models import now_ms

log = logging.getLogger(__name__)

INTERIM_ALPHA_FACTOR = 50
SLOW_SHARE = 0.01  # the share of requests a p99 limit allows above it


def slow_requests(counts: list[int], bound_ms: float) -> int:
    """Requests certainly slower than `bound_ms`: those in buckets whose lower edge is at or above it
    (a bucket straddling the bound may hold fast requests too, so it is not counted)."""
    total = 0
    for i, count in enumerate(counts):
        lower = 0.0 if i == 0 else LATENCY_BUCKETS_MS[i - 1]
        if lower >= bound_ms:
            total += count
    return total


@dataclass
class _Check:
    """One statistical test: its verdict, a phrase for the reason, and its evidence."""

    name: str
    significant: bool
    over: bool  # the observed value is on the wrong side of its limit
    phrase: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _pct(x: float) -> str:
    return f"{100 * x:.2g}%" if x < 0.1 else f"{100 * x:.3g}%"


def _p(p: float) -> str:
    return f"p={p:.2g}"


def _error_vs_limit(plan: CanaryPlan, n: int, errors: int, alpha: float) -> _Check:
    p = float(stats.binomtest(errors, n, plan.max_error_rate, alternative="greater").pvalue)
    rate = errors / n
    over = rate > plan.max_error_rate
    sign = ">" if over else "≤"
    phrase = f"error rate {_pct(rate)} {sign} {_pct(plan.max_error_rate)} ({_p(p)})"
    return _Check("error_rate", p < alpha, over, phrase,
                  {"errors": errors, "requests": n, "rate": rate, "threshold": plan.max_error_rate,
                   "test": "binomial, one-sided", "p_value": p})


def _error_vs_baseline(n: int, errors: int, base: VersionSummary, alpha: float) -> _Check:
    table = [[errors, n - errors], [base.errors, base.requests - base.errors]]
    p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    rate, base_rate = errors / n, base.errors / base.requests
    sign = ">" if rate > base_rate else "≤"
    return _Check("error_vs_baseline", p < alpha, False,
                  f"vs baseline {_pct(rate)} {sign} {_pct(base_rate)} ({_p(p)})",
                  {"errors": errors, "requests": n, "baseline_errors": base.errors,
                   "baseline_requests": base.requests, "rate": rate, "baseline_rate": base_rate,
                   "test": "Fisher exact, one-sided", "p_value": p})


def _latency(plan: CanaryPlan, counts: list[int], alpha: float) -> _Check:
    bound = float(plan.max_p99_ms or 0)
    total = sum(counts)
    slow = slow_requests(counts, bound)
    p = float(stats.binomtest(slow, total, SLOW_SHARE, alternative="greater").pvalue)
    share = slow / total
    p99 = quantile_ms(counts, 0.99)
    over = share > SLOW_SHARE
    sign = ">" if p99 is not None and p99 > bound else "≤"
    return _Check("latency", p < alpha, over,
                  f"p99 {p99:g} ms {sign} {bound:g} ms ({_pct(share)} slower, {_p(p)})",
                  {"p99_ms": p99, "p50_ms": quantile_ms(counts, 0.5), "max_p99_ms": bound, "slow": slow,
                   "requests": total, "slow_share": share, "allowed_share": SLOW_SHARE,
                   "test": "binomial, one-sided, on requests in buckets entirely above the bound",
                   "p_value": p})


def _accuracy(plan: CanaryPlan, canary: dict[str, Any], baseline: dict[str, Any], alpha: float) -> _Check:
    """Non-inferiority of the canary's accuracy, with Agresti-Caffo's one added success and failure per
    group so that a perfect (or hopeless) score still has a variance."""
    drop = float(plan.max_metric_drop or 0)
    n_c, k_c = int(canary["labelled"]), int(canary["correct"])
    n_b, k_b = int(baseline["labelled"]), int(baseline["correct"])
    p_c, p_b = (k_c + 1) / (n_c + 2), (k_b + 1) / (n_b + 2)
    se = math.sqrt(p_c * (1 - p_c) / (n_c + 2) + p_b * (1 - p_b) / (n_b + 2))
    z = (p_c - p_b + drop) / se
    p = float(stats.norm.cdf(z))
    acc_c, acc_b = k_c / n_c, k_b / n_b
    over = acc_c < acc_b - drop
    sign = "<" if over else "≥"
    return _Check("accuracy", p < alpha, over,
                  f"accuracy {_pct(acc_c)} {sign} {_pct(acc_b)} − {_pct(drop)} ({_p(p)}, {n_c} labels)",
                  {"labelled": n_c, "correct": k_c, "accuracy": acc_c, "baseline_labelled": n_b,
                   "baseline_correct": k_b, "baseline_accuracy": acc_b, "max_drop": drop, "z": z,
                   "test": "Agresti-Caffo z, one-sided non-inferiority", "p_value": p})


def _summary(s: VersionSummary | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"model": s.model, "version": s.version, "requests": s.requests, "errors": s.errors,
            "error_rate": s.error_rate, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "mean_ms": s.mean_ms}


def evaluate(plan: CanaryPlan, canary: VersionSummary | None, baseline: VersionSummary | None, now_ms: int,
             online: dict[str, dict[str, Any]] | None = None, *, deployment: str = "") -> Decision:
    """What to do with a running canary, from the traffic of the current step (and online labels)."""
    step = plan.steps[min(plan.step_index, len(plan.steps) - 1)]
    n = canary.requests if canary is not None else 0
    errors = min(canary.errors, n) if canary is not None else 0
    elapsed_s = max(0.0, (now_ms - plan.step_started) / 1000)
    judged = n >= plan.min_requests and elapsed_s >= plan.interval_s
    alpha = plan.alpha if judged else plan.alpha / INTERIM_ALPHA_FACTOR
    evidence: dict[str, Any] = {
        "step": step, "step_index": plan.step_index, "elapsed_s": elapsed_s, "requests": n,
        "min_requests": plan.min_requests, "interval_s": plan.interval_s, "alpha": plan.alpha,
        "alpha_used": alpha, "look": "final" if judged else "interim",
        "canary": _summary(canary), "baseline": _summary(baseline), "tests": {}}

    checks: list[_Check] = []
    if n:
        checks.append(_error_vs_limit(plan, n, errors, alpha))
        if baseline is not None and baseline.requests:
            checks.append(_error_vs_baseline(n, errors, baseline, alpha))
        if plan.max_p99_ms is not None and canary is not None and sum(canary.latency_counts):
            checks.append(_latency(plan, canary.latency_counts, alpha))
    if plan.max_metric_drop is not None and online:
        got_c, got_b = online.get(plan.canary.key), online.get(plan.baseline.key)
        if got_c and got_b and got_c.get("labelled") and got_b.get("labelled"):
            checks.append(_accuracy(plan, got_c, got_b, alpha))
    for check in checks:
        evidence["tests"][check.name] = {**check.evidence, "significant": check.significant}

    def decide(action: str, reason: str) -> Decision:
        return Decision(deployment=deployment, timestamp=now_ms, action=action, step=step, reason=reason,
                        evidence=evidence)

    failed = [c for c in checks if c.significant]
    if failed:
        look = "" if judged else f" (early, {alpha:.2g} level)"
        return decide("rollback", "; ".join(c.phrase for c in failed) + f"; {n} requests at {step:g}%{look}")
    if n < plan.min_requests:
        return decide("wait", f"step {step:g}%: waiting for {plan.min_requests} canary requests")
    if elapsed_s < plan.interval_s:
        return decide("wait", f"step {step:g}%: waiting until the step has lasted {plan.interval_s:g} s")
    doubtful = [c for c in checks if c.over]
    if doubtful:
        names = ", ".join(c.name.replace("_", " ") for c in doubtful)
        return decide("hold", f"step {step:g}%: {names} over the limit but not significantly; "
                      "waiting for more evidence")
    phrases = [c.phrase for c in checks]
    if "latency" not in evidence["tests"] and canary is not None and canary.p99_ms is not None:
        phrases.append(f"p99 {canary.p99_ms:g} ms")
    summary = "; ".join(phrases) + f"; {n} requests in {elapsed_s:.0f} s"
    nxt = plan.step_index + 1
    if nxt >= len(plan.steps) - 1:
        evidence["next_step"] = 100.0
        return decide("promote", f"{summary}: promote to 100%")
    evidence["next_step"] = plan.steps[nxt]
    return decide("advance", f"{summary}: advance {step:g}% → {plan.steps[nxt]:g}%")


def _pick(summaries: list[VersionSummary], ref: ModelRef) -> VersionSummary | None:
    for s in summaries:
        if s.model == ref.model and s.version == ref.version and s.role == "route":
            return s
    return None


class CanaryController:
    """Evaluates running canaries and applies the decisions; several may run, one acts per deployment."""

    def __init__(self, deployments: DeploymentAPI, owner: str, *, inference_log_root: str | None = None,
                 lease_s: float = 30.0) -> None:
        if not isinstance(owner, str) or not owner:
            raise InvalidInput("owner names this controller (host and process, say)", field="owner")
        if not isinstance(lease_s, (int, float)) or not lease_s > 0:
            raise InvalidInput(f"lease_s is a positive number, got {lease_s!r}", field="lease_s")
        self.deployments = deployments
        self.owner = owner
        self.inference_log_root = inference_log_root
        self.lease_s = float(lease_s)
        self._recorded: dict[str, tuple[int, str, str]] = {}  # last wait/hold written, per deployment
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, name: str) -> Decision | None:
        """Evaluate one deployment once and apply the decision. None when there is no running canary,
        another controller holds the lease, or the deployment changed under the decision."""
        dep = self.deployments.get(name)
        plan = dep.policy.canary
        if plan is None or plan.state != "running":
            return None
        if not self.deployments.take_controller_lease(name, self.owner, self.lease_s):
            return None
        summaries = self.deployments.summaries(name, plan.step_started)
        online = self._online(name, plan)
        decision = evaluate(plan, _pick(summaries, plan.canary), _pick(summaries, plan.baseline), now_ms(),
                            online, deployment=name)
        if decision.action in ("wait", "hold"):
            mark = (dep.revision, decision.action, decision.reason)
            if self._recorded.get(name) == mark:
                return decision  # said already: one row per change of mind, not one per tick
        try:
            self.deployments.apply_decision(name, decision, expected_revision=dep.revision)
        except Conflict as exc:  # someone changed the deployment meanwhile; the next tick re-reads it
            log.info("canary decision for %r is stale: %s", name, exc)
            return None
        if decision.action in ("wait", "hold"):
            self._recorded[name] = (dep.revision, decision.action, decision.reason)
        else:
            self._recorded.pop(name, None)
        return decision

    def _online(self, name: str, plan: CanaryPlan) -> dict[str, dict[str, Any]] | None:
        """Online accuracy since the rollout began (a version's accuracy does not depend on its share)."""
        if self.inference_log_root is None or plan.max_metric_drop is None:
            return None
        from arsenale.serving.inference_log import online_accuracy

        started = plan.step_started
        for change in self.deployments.history(name, limit=100):
            if change.action == "canary":
                started = min(started, change.timestamp)
                break
        return online_accuracy(self.inference_log_root, name, since_ms=started)

    def start(self, names: Callable[[], list[str]] | list[str], every_s: float = 5.0) -> None:
        """Tick every deployment in `names` (a list, or a function giving it) every `every_s` seconds."""
        if self._thread is not None and self._thread.is_alive():
            raise Conflict("this canary controller is already running")
        if not isinstance(every_s, (int, float)) or not every_s > 0:
            raise InvalidInput(f"every_s is a positive number, got {every_s!r}", field="every_s")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(names, float(every_s)), daemon=True,
                                        name=f"canary-controller-{self.owner}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self, names: Callable[[], list[str]] | list[str], every_s: float) -> None:
        while not self._stop.is_set():
            try:
                current = list(names() if callable(names) else names)
            except Exception:
                log.exception("canary controller could not list deployments")
                current = []
            for name in current:
                if self._stop.is_set():
                    break
                try:
                    self.tick(name)
                except Exception:  # one broken deployment must not stop the others, or the thread
                    log.exception("canary controller tick failed for %r", name)
            self._stop.wait(every_s)
