"""Rollouts: shadow traffic, canary splits, promotion on live evidence, warm-up, rollback."""
