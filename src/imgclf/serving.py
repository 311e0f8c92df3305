"""The model as users call it: images in, a label and one probability per class out.

``Classifier`` is the core that ``imgclf predict``, the register stage (scoring the
champion) and the registered MLflow pyfunc (``mlflow_model.py``) share. The pyfunc
accepts images as clients send them:

- a DataFrame (``dataframe_split``/``dataframe_records`` in JSON) or a dict
  (``inputs: {"image": [...]}``) with a column ``image`` whose cells are base64 text
  of an image file (JPEG, PNG, ...), raw file bytes, or (height, width, 3) arrays;
- an integer array, (height, width, 3) or (batch, height, width, 3), values 0-255
  (``inputs``/``instances`` in JSON).

Output: a DataFrame with ``label`` and ``p_<class>`` for each class, one row per image.
Decoding goes through imaging.load_rgb, the training pipeline's own conversion.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgclf.imaging import load_rgb

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from imgclf.data import Examples
    from imgclf.scoring import Scored

KERAS_ARTIFACT = "keras_model"  # names of the pyfunc's artifacts
CLASSES_ARTIFACT = "classes"


class InputError(ValueError):
    """A request the model cannot read; the message names the row."""


@dataclass(frozen=True)
class Classifier:
    model: keras.Model  # uint8 (batch, h, w, 3) -> (batch, 1) sigmoid or (batch, k) softmax
    classes: list[str]  # in output order
    image_size: int  # the model's input side; images are resized to it before batching

    @classmethod
    def load(cls, model_file: Path, classes_file: Path) -> Classifier:
        """A saved model and its classes.json (never unpickles: safe_mode rejects Lambda code)."""
        import keras

        saved = json.loads(classes_file.read_text(encoding="utf-8"))
        model = keras.saving.load_model(model_file, safe_mode=True)
        return cls(model=model, classes=list(saved["classes"]), image_size=int(saved["image_size"]))

    def score(self, examples: Examples, positive: str | None, threshold: float, batch_size: int) -> Scored:
        """Metrics on labelled files, read through the training input pipeline."""
        from imgclf.data import predict_examples
        from imgclf.scoring import probabilities, score

        outputs = predict_examples(self.model, examples, self.image_size, batch_size)
        probs = probabilities(outputs, len(self.classes))
        return score(np.asarray(examples.labels), probs, self.classes, positive, threshold)

    def probabilities(self, images: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(n, num_classes) probabilities of (height, width, 3) uint8 images of any sizes."""
        from imgclf.data import resize_uint8
        from imgclf.scoring import probabilities

        out = []
        for start in range(0, len(images), batch_size):
            batch = np.stack(
                [np.asarray(resize_uint8(im, self.image_size)) for im in images[start : start + batch_size]]
            )
            out.append(np.asarray(self.model.predict_on_batch(batch)))
        if not out:
            return np.zeros((0, len(self.classes)))
        return probabilities(np.concatenate(out), len(self.classes))

    def table(self, probs: np.ndarray) -> pd.DataFrame:
        """``label`` and ``p_<class>`` columns, one row per image."""
        import pandas as pd

        frame = pd.DataFrame(probs, columns=[f"p_{c}" for c in self.classes])
        frame.insert(0, "label", [self.classes[i] for i in probs.argmax(axis=1)] if len(probs) else [])
        return frame


def decode_cell(cell: Any) -> np.ndarray:
    """One ``image`` cell (base64 text, file bytes or an array) as (height, width, 3) uint8."""
    if isinstance(cell, str):
        try:
            cell = base64.b64decode(cell, validate=True)
        except (binascii.Error, ValueError):
            raise InputError("not base64 text") from None
    if isinstance(cell, bytes | bytearray):
        try:
            return load_rgb(bytes(cell))
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad bytes
            raise InputError(f"not a readable image ({type(exc).__name__})") from None
    return as_uint8_image(np.asarray(cell))


def as_uint8_image(array: np.ndarray) -> np.ndarray:
    if array.ndim != 3 or array.shape[-1] != 3 or not array.size:
        raise InputError(f"an image array must be (height, width, 3), got {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or array.min() < 0 or array.max() > 255:
            raise InputError("image array values must be numbers from 0 to 255")
        array = array.astype(np.uint8)
    return array


def read_images(model_input: Any) -> list[np.ndarray]:
    """Every image of a request, in order; InputError names the first bad one."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame | dict):
        if "image" not in model_input:
            raise InputError("expected a column named 'image' (base64-encoded image bytes)")
        cells = list(model_input["image"])
        images = []
        for row, cell in enumerate(cells):
            try:
                images.append(decode_cell(cell))
            except InputError as exc:
                raise InputError(f"image {row}: {exc}") from None
        return images
    array = np.asarray(model_input)
    if array.ndim == 3:
        return [as_uint8_image(array)]
    if array.ndim == 4:
        return [as_uint8_image(a) for a in array]
    raise InputError("expected a column 'image', or an array of shape (height, width, 3) or (n, height, width, 3)")


def load_pyfunc(uri: str) -> Any:
    """The Python object behind a pyfunc model URI (for imgclf models, an ``ImageClassifier``
    whose ``classifier`` is a Classifier)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(uri).unwrap_python_model()


def log_model(model_file: Path, classes_file: Path) -> str:
    """Log the served model to the active run: imgclf/mlflow_model.py with the Keras file
    and classes.json as artifacts, and the imgclf package as its code, so the model loads
    wherever its pip requirements are installed. Returns its models:/ URI."""
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
            python_model=str(package / "mlflow_model.py"),
            artifacts={KERAS_ARTIFACT: str(model_file), CLASSES_ARTIFACT: str(classes_file)},
            code_paths=[str(package)],
            pip_requirements=requirements,
        )
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_LOG_UV_FILES", None)
        else:
            os.environ["MLFLOW_LOG_UV_FILES"] = saved
    return str(info.model_uri)
