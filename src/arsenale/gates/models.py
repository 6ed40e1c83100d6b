"""A stored gate run: what was judged against what, on which data, under which policy, with what outcome."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from arsenale.gates.results import CheckResult

__all__ = ["GateRun"]


class GateRun(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")

    id: int
    name: str
    version: int
    champion_version: int | None = Field(None, description="None for a first model, judged on absolute thresholds")
    dataset: str = Field(description="the evaluation data, e.g. dataset:transactions@4 or a file name")
    passed: bool
    results: list[dict[str, Any]] = Field(description="one entry per check: name, passed, message, values, details")
    policy: str = Field(description="the policy's TOML as the gate read it")
    promotion: dict[str, Any] | None = Field(None, description="what the pass did: an alias set, a canary started")
    creation_time: int
    created_by: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def checks(self) -> list[CheckResult]:
        return [CheckResult.from_dict(r) for r in self.results]

    @property
    def failures(self) -> list[str]:
        return [r["name"] for r in self.results if not r["passed"]]
