"""The promotion policy: which live evidence a candidate needs, checked one rule at a time."""

from __future__ import annotations

from seqserve.shared.rollouts.evidence import ShadowEvidence, VersionEvidence
from seqserve.shared.rollouts.schemas import CheckRead, PromotionPolicy


def _shadow_checks(policy: PromotionPolicy, shadow: ShadowEvidence) -> list[CheckRead]:
    checks = []
    if policy.min_shadow_inputs:
        checks.append(CheckRead(name="min_shadow_inputs", passed=shadow.inputs >= policy.min_shadow_inputs,
                                detail=f"{shadow.inputs} shadowed inputs compared, {policy.min_shadow_inputs} needed"))
    if policy.min_agreement:
        rate = shadow.agreement
        checks.append(CheckRead(
            name="min_agreement", passed=rate is not None and rate >= policy.min_agreement,
            detail=f"agreement {'none yet' if rate is None else f'{rate:.4f}'}, {policy.min_agreement} needed"))
    return checks


def _canary_checks(policy: PromotionPolicy, candidate: VersionEvidence | None, current: VersionEvidence | None
                   ) -> list[CheckRead]:
    checks = []
    finished = candidate.finished if candidate else 0
    if policy.min_canary_jobs:
        checks.append(CheckRead(name="min_canary_jobs", passed=finished >= policy.min_canary_jobs,
                                detail=f"{finished} canary jobs finished, {policy.min_canary_jobs} needed"))
    if policy.max_failure_ratio_increase is not None:
        ours = candidate.failure_ratio if candidate else None
        theirs = (current.failure_ratio if current else None) or 0.0
        limit = theirs + policy.max_failure_ratio_increase
        checks.append(CheckRead(
            name="max_failure_ratio_increase", passed=ours is not None and ours <= limit,
            detail=f"failure ratio {'none yet' if ours is None else f'{ours:.4f}'} vs current {theirs:.4f}, "
                   f"at most {limit:.4f}"))
    return checks


def evaluate(policy: PromotionPolicy, shadow: ShadowEvidence, candidate: VersionEvidence | None,
             current: VersionEvidence | None) -> list[CheckRead]:
    """Every rule the policy sets, passed or not (no rules: no evidence needed)."""
    return _shadow_checks(policy, shadow) + _canary_checks(policy, candidate, current)
