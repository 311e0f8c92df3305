"""The ``imgclf`` command line: argument handling only; each command calls one entry function.

Heavy libraries (TensorFlow, MLflow, Great Expectations) are imported inside the
commands that use them, so ``imgclf --help`` answers at once. Importing a module
below registers its commands on ``app``; ``imgclf --help`` lists them in that order.
"""

# isort: off
from imgclf.cli import stages, flows, registry, audit, serving  # noqa: F401

# isort: on
from imgclf.cli.common import app

__all__ = ["app"]
