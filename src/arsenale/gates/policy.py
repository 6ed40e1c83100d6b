"""A gate's policy: which checks a candidate must pass, read from TOML and validated key by key.

    [[performance]]
    metric = "roc_auc"
    min = 0.95                     # the candidate's own floor (a ceiling for loss-like metrics)
    min_gain = 0.0                 # its gain over the champion, in the metric's units
    min_relative_gain = 0.0        # the same, as a share of the champion's value
    non_inferiority_margin = 0.01  # the interval's lower bound of the gain may not fall below -margin
    confidence = 0.95
    resamples = 1000

An unknown key, a wrong type or a metric that does not exist is an error naming where it is
(`performance[0].min: Input should be a valid number`), never a silently ignored line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arsenale.errors import InvalidInput
from arsenale.gates.metrics import get_metric

__all__ = ["PerformanceCheck", "Policy", "load_policy"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PerformanceCheck(_Strict):
    metric: str
    min: float | None = Field(None, description="the candidate's floor (its ceiling for loss-like metrics)")
    min_gain: float = 0.0
    min_relative_gain: float = 0.0
    non_inferiority_margin: float = Field(0.0, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    resamples: int = Field(1000, ge=100, le=100_000)

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        get_metric(value)
        return value

    @field_validator("min", "min_gain", "min_relative_gain", "non_inferiority_margin", "confidence",
                     mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        # TOML writes 1 and 1.0 differently; both are numbers here, but true is not.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Policy(_Strict):
    performance: list[PerformanceCheck] = Field(default_factory=list)
    on_pass_alias: str | None = Field(None, description="the alias a passing candidate gets, e.g. challenger")


def load_policy(source: str | Path) -> Policy:
    """A policy from a TOML file (a path) or TOML text."""
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
    except InvalidInput as exc:  # raised by a validator (an unknown metric)
        raise InvalidInput(f"policy: {exc.message}", field="policy.performance.metric") from None
    if not policy.performance:
        raise InvalidInput("the policy holds no check: add at least one [[performance]] table", field="policy")
    return policy
