"""The design card's folders install under one import name: `services/` is
`seqserve.services` and `shared/` is `seqserve.shared`, so nothing but `seqserve` lands
top-level in site-packages. The package list is derived from the folders (pyproject's
`packages.find` cannot rename what it finds); everything else is in pyproject.toml."""

from setuptools import find_packages, setup

ROOTS = ("services", "shared")

# The Python client (clients/python, its own distribution too) installs with the server, so
# the user CLI (`seqserve jobs ...`) talks HTTP through it.
CLIENT = {"seqserve_client": "clients/python/seqserve_client"}

setup(
    package_dir={f"seqserve.{root}": root for root in ROOTS} | CLIENT,
    packages=[f"seqserve.{root}{sub}" for root in ROOTS for sub in ("", *(f".{p}" for p in find_packages(root)))]
    + list(CLIENT),
)
