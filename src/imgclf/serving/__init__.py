"""Serving: the Classifier that evaluate, register, predict and the server share (classifier),
the registered pyfunc (model_code), `imgclf predict`, and `imgclf serve` (server, workers,
supervise)."""

from __future__ import annotations

import importlib
from typing import Any

# A registered version runs the model code it was logged with, and that code imports
# from the imgclf that loads it. Versions logged before the subpackage layout (a flat
# imgclf/serving.py) import these names from `imgclf.serving`, so they stay importable
# from here, lazily, or every model registered before an upgrade stops loading.
# tests/integration/test_registered_model_code.py loads each earlier model code.
_MOVED = {
    "CLASSES_ARTIFACT": "imgclf.serving.pyfunc",
    "KERAS_ARTIFACT": "imgclf.serving.pyfunc",
    "Classifier": "imgclf.serving.classifier",
    "InputError": "imgclf.serving.requests",
    "Limits": "imgclf.serving.requests",
    "iter_images": "imgclf.serving.requests",
    "read_images": "imgclf.serving.requests",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
