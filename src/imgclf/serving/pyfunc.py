"""The model as MLflow holds it: logging the pyfunc (serving/model_code.py with the Keras
file and classes.json as artifacts, the request limits as its model config) and loading
one back from a models:/ URI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imgclf.serving.requests import DEFAULT_MAX_PIXELS, Limits

KERAS_ARTIFACT = "keras_model"  # names of the pyfunc's artifacts
CLASSES_ARTIFACT = "classes"


def load_pyfunc(uri: str) -> Any:
    """The Python object behind a pyfunc model URI (for imgclf models, an ``ImageClassifier``
    whose ``classifier`` is a Classifier)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(uri).unwrap_python_model()


def log_model(model_file: Path, classes_file: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Log the served model to the active run: imgclf/serving/model_code.py with the Keras file
    and classes.json as artifacts, and the imgclf package as its code, so the model loads
    wherever its pip requirements are installed. Returns its models:/ URI.

    Args:
        max_pixels: validate.max_pixels, recorded with the model (its model config, with
            the per-request image count) so a server applies it without params.yaml.
    """
    from importlib.metadata import version

    import mlflow

    import imgclf

    package = Path(imgclf.__file__).parent
    # Explicit requirements: inferring them would load the model in a subprocess (~16 s)
    # or, in a uv project, export every dependency of the pipeline.
    requirements = [
        f"{name}=={version(name)}" for name in ("tensorflow", "keras", "mlflow", "numpy", "pandas", "pillow")
    ]
    saved = os.environ.get("MLFLOW_LOG_UV_FILES")
    # Without this MLflow copies the project's uv.lock (the whole pipeline's) into the model.
    os.environ["MLFLOW_LOG_UV_FILES"] = "false"
    try:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(package / "serving" / "model_code.py"),
            artifacts={KERAS_ARTIFACT: str(model_file), CLASSES_ARTIFACT: str(classes_file)},
            code_paths=[str(package)],
            pip_requirements=requirements,
            model_config=Limits(max_pixels=max_pixels).config(),
        )
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_LOG_UV_FILES", None)
        else:
            os.environ["MLFLOW_LOG_UV_FILES"] = saved
    return str(info.model_uri)
