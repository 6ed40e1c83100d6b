"""A gate's policy: which checks a candidate must pass, read from TOML and validated key by key.

    label = "target"               # the label column (default: the one the candidate's contract records)
    features = ["a", "b"]          # input columns in order, for a model trained on arrays (default: all but
                                   # the label); a model trained on a DataFrame takes its contract's columns

    [[performance]]
    metric = "roc_auc"
    min = 0.95                     # the candidate's own floor (a ceiling for loss-like metrics)
    min_gain = 0.0                 # its gain over the champion, in the metric's units (default: not checked)
    min_relative_gain = 0.0        # the same, as a share of the champion's value (default: not checked)
    non_inferiority_margin = 0.01  # the interval's lower bound of the gain may not fall below -margin
                                   # (default 0: the data must rule out that the candidate is worse)
    confidence = 0.95
    resamples = 1000

    [[fairness]]   sensitive = "sex", limits on demographic parity / equalized odds / metric gaps
    [[slices]]     by = "region", a floor per slice and a margin of regression against the champion
    [contract_slices]  the same for every slice column the candidate's contract names
    [robustness]   noise, missing values, out-of-range and unseen inputs, listed edge cases
    [operational]  latency per row and per batch, model size, contract compatibility
    [promote]      alias = "challenger" and/or canary = "<deployment>": what a pass does

Each check table is defined beside its check (fairness.py, slices.py, robustness.py, operational.py).
An unknown key, a wrong type or a metric that does not exist is an error naming where it is
(`performance[0].min: Input should be a valid number`), never a silently ignored line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal, overload

from pydantic import Field, ValidationError, field_validator, model_validator

from arsenale.errors import InvalidInput
from arsenale.gates.fairness import FairnessCheck
from arsenale.gates.metrics import metric_name
from arsenale.gates.operational import OperationalCheck
from arsenale.gates.results import Strict, toml_float
from arsenale.gates.robustness import RobustnessCheck
from arsenale.gates.slices import SliceCheck

__all__ = ["ContractSlices", "PerformanceCheck", "Policy", "Promote", "load_policy"]


class PerformanceCheck(Strict):
    metric: str
    min: float | None = Field(None, description="the candidate's floor (its ceiling for loss-like metrics)")
    min_gain: float | None = Field(None, description="the point estimate of the gain must reach this")
    min_relative_gain: float | None = Field(None, description="the same as a share of the champion's value")
    non_inferiority_margin: float = Field(0.0, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    resamples: int = Field(1000, ge=100, le=100_000)

    _known = field_validator("metric")(metric_name)
    _number = field_validator("min", "min_gain", "min_relative_gain", "non_inferiority_margin", "confidence",
                              mode="before")(toml_float)


class ContractSlices(Strict):
    """A slice check for every slice the candidate's contract names (its `slices=` at registration)."""

    metric: str
    min: float | None = None
    max_regression: float | None = Field(None, ge=0)
    min_rows: int = Field(30, ge=1)
    bins: int = Field(4, ge=2, le=100)

    _number = field_validator("min", "max_regression", mode="before")(toml_float)

    @model_validator(mode="after")
    def _valid(self) -> ContractSlices:
        self.check("contract")  # the same rules as a [[slices]] table
        return self

    def check(self, by: str) -> SliceCheck:
        return SliceCheck(by=by, **self.model_dump())


class Promote(Strict):
    alias: str | None = Field(None, description="the alias a passing candidate gets, e.g. challenger")
    canary: str | None = Field(None, description="the deployment in which a passing candidate starts a canary")


class Policy(Strict):
    label: str | None = Field(None, description="the label column (default: the one the candidate's contract "
                              "records)")
    features: list[str] | None = Field(None, description="the input columns in order, for models trained on "
                                       "arrays (default: every column but the label)")
    performance: list[PerformanceCheck] = Field(default_factory=list)
    fairness: list[FairnessCheck] = Field(default_factory=list)
    slices: list[SliceCheck] = Field(default_factory=list)
    contract_slices: ContractSlices | None = Field(None, description="the same for the contract's slices")
    robustness: RobustnessCheck | None = None
    operational: OperationalCheck | None = None
    promote: Promote | None = Field(None, description="what a pass does; nothing without this table")

    @property
    def checks(self) -> int:
        return (len(self.performance) + len(self.fairness) + len(self.slices) + (self.contract_slices is not None)
                + (self.robustness is not None) + (self.operational is not None))


@overload
def load_policy(source: str | Path) -> Policy: ...
@overload
def load_policy(source: str | Path, *, with_text: Literal[True]) -> tuple[Policy, str]: ...


def load_policy(source: str | Path, *, with_text: bool = False) -> Policy | tuple[Policy, str]:
    """A policy from a TOML file (a path) or TOML text; with `with_text`, also the text as read (what a
    gate run stores, so that a result can be traced to the exact thresholds it was judged by)."""
    text = source
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and source.endswith(".toml")):
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"no policy file at {path}", field="policy")
        text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(str(text))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"the policy is not valid TOML: {exc}", field="policy") from None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
        raise InvalidInput(f"policy {where}: {first['msg']}", field=f"policy.{where}") from None
    if not policy.checks:
        raise InvalidInput("the policy holds no check: add a [[performance]], [[fairness]], [[slices]], "
                           "[robustness] or [operational] table", field="policy")
    return (policy, str(text)) if with_text else policy
