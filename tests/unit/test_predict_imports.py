"""`imgclf predict` imports TensorFlow without Keras's optional extras (scikit-learn,
matplotlib: a third of the import), and leaves them importable afterwards."""

from __future__ import annotations

import importlib
import sys

import pytest

from imgclf.cli.serving import KERAS_EXTRAS, _not_imported


def test_a_blocked_module_cannot_be_imported_within_and_can_after() -> None:
    sys.modules.pop("colorsys", None)  # a small stdlib module nothing here needs
    with _not_imported(("colorsys",)), pytest.raises(ImportError):
        importlib.import_module("colorsys")
    assert importlib.import_module("colorsys").rgb_to_hsv(1, 0, 0) == (0.0, 1.0, 1)


def test_a_module_already_imported_is_left_as_it_is() -> None:
    import json

    with _not_imported(("json",)):
        assert importlib.import_module("json") is json
    assert sys.modules["json"] is json
    assert set(KERAS_EXTRAS) == {"sklearn", "matplotlib"}
