"""A session fixture has one definition: one imported into a second module is a fixture
definition of its own with its own cache, so the session builds it twice (two trainings
into one path: a checksum one side recorded, the other side's file)."""

from __future__ import annotations

import importlib
import pkgutil

from _pytest.fixtures import FixtureFunctionDefinition

import tests


def _test_modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(tests.__path__, "tests.")]


def test_no_module_reexports_a_session_fixture() -> None:
    reexported = []
    for name in _test_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if not isinstance(value, FixtureFunctionDefinition):
                continue
            if value._fixture_function_marker.scope in ("session", "package") and \
                    value._fixture_function.__module__ != name:
                reexported.append(f"{name}.{attr} (from {value._fixture_function.__module__})")
    assert reexported == [], "import these through pytest_plugins in tests/conftest.py instead"


def test_the_check_sees_the_session_fixtures() -> None:
    # The walk reaches the plugin module and sees its session fixtures as such.
    from tests import model_fixtures

    assert "tests.model_fixtures" in _test_modules()
    assert model_fixtures.tiny_lm._fixture_function_marker.scope == "session"
