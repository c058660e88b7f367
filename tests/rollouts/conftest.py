from tests.api.conftest import client  # noqa: F401  (the in-process API with an admin key)
