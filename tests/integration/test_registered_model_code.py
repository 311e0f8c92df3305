"""Versions registered by an earlier imgclf keep loading and answering after an upgrade.

A registered version runs the model code it was logged with, and that code imports from
the imgclf that loads it. Each earlier release's model code (tests/fixtures/
registered_model_code) is logged with a real Keras model to a sqlite store here, loaded
back with ``mlflow.pyfunc.load_model`` and asked to classify a PNG.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd
import pytest

from images import encode, rgb
from models import tiny_model

EARLIER = sorted((Path(__file__).parents[1] / "fixtures" / "registered_model_code").glob("model_code_*.py"))


def test_every_earlier_release_is_here() -> None:
    assert len(EARLIER) >= 4  # one per change of the model code before the subpackage layout


@pytest.mark.parametrize("code", EARLIER, ids=lambda p: p.stem)
def test_a_version_logged_with_earlier_model_code_loads_and_predicts(
    code: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_LOG_UV_FILES", "false")
    model, classes = tmp_path / "model.keras", tmp_path / "classes.json"
    tiny_model(8).save(model)
    classes.write_text(json.dumps({"classes": ["cat", "dog"], "image_size": 8}), encoding="utf-8")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        mlflow.set_experiment("old")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(code),
                artifacts={"keras_model": str(model), "classes": str(classes)},
                pip_requirements=["mlflow"],
            )
        loaded = mlflow.pyfunc.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    image = base64.b64encode(encode(rgb(1, (40, 30)), "PNG")).decode()
    answer = loaded.predict(pd.DataFrame({"image": [image, image]}))
    assert list(answer.columns) == ["label", "p_cat", "p_dog"]
    assert answer["label"].isin(["cat", "dog"]).all()
    assert ((answer["p_cat"] + answer["p_dog"] - 1).abs() < 1e-5).all()
