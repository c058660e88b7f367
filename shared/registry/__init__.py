"""The model registry: models, monotonic versions, aliases, and the promotion gate."""
