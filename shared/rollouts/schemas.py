"""Rollout schemas: what the alias routes read and write."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from seqserve.shared.validation import StrictText

VersionNumber = Annotated[StrictInt, Field(ge=1, le=2**31 - 1)]
CanaryKey = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}$")]
CanaryWeight = Annotated[StrictInt, Field(ge=0, le=1000)]


class ShadowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: VersionNumber = Field(description="The version that answers sampled jobs in the shadow.")
    rate: float = Field(gt=0, le=1, description="Share of new jobs also run on the shadow version.")


class PromotionPolicy(BaseModel):
    """Live evidence a promotion through `.../promote` needs (all zero: none)."""

    model_config = ConfigDict(extra="forbid")

    min_shadow_inputs: StrictInt = Field(0, ge=0, le=10**9, description="Shadowed inputs compared, at least.")
    min_agreement: float = Field(0.0, ge=0, le=1, description="Mean per-input agreement with production, at least.")
    min_canary_jobs: StrictInt = Field(0, ge=0, le=10**9, description="Finished canary jobs of the candidate.")
    max_failure_ratio_increase: float | None = Field(
        None, ge=0, le=1, description="The candidate's failure ratio may exceed the current version's by this much.")


class RolloutUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shadow: ShadowConfig | None = Field(None, description="None: no shadow.")
    canary: dict[CanaryKey, CanaryWeight] = Field(
        default_factory=dict, max_length=8,
        description='Version number -> weight of new jobs, e.g. {"3": 90, "4": 10}; empty: all to the alias.')
    policy: PromotionPolicy = Field(default_factory=PromotionPolicy)
    reason: StrictText = Field("", max_length=500, description="Why: kept in the audit trail.")


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: VersionNumber | None = Field(None, description="Default: the shadow version, else the canary's other arm.")
    force: StrictBool = Field(False, description="Move although the policy refuses (audited as forced).")
    reason: StrictText = Field("", max_length=500)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: StrictText = Field("", max_length=500)


class ShadowRead(BaseModel):
    version: int
    rate: float
    since: datetime | None
    jobs: int
    failed: int
    inputs: int
    agreed: int
    agreement: float | None


class CanaryArmRead(BaseModel):
    version: int
    weight: int
    finished: int
    failed: int
    failure_ratio: float | None
    mean_seconds: float | None


class AliasStateRead(BaseModel):
    model: str
    alias: str
    version: int
    pending_version: int | None
    shadow: ShadowRead | None
    canary: list[CanaryArmRead]
    canary_since: datetime | None
    policy: PromotionPolicy
    previous: dict[str, Any] | None
    warm: dict[str, list[str]] = Field(description="Version number -> inference processes that hold it warm.")


class CheckRead(BaseModel):
    name: str
    passed: bool
    detail: str


class PromotionRead(BaseModel):
    promoted: bool
    reason: str
    checks: list[CheckRead]
    warm_processes: int
    expected_workers: int
    warm_timed_out: bool
    state: AliasStateRead
