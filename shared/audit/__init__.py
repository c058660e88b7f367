"""The audit trail: who moved an alias, changed a key or started a training run, when, why."""
