"""The model as users call it: images in, a label and one probability per class out.

``Classifier`` is the core that ``imgclf predict``, the register stage (scoring the
champion) and the registered MLflow pyfunc (``serving/model_code.py``) share. The pyfunc
accepts images as clients send them:

- a DataFrame (``dataframe_split``/``dataframe_records`` in JSON) or a dict
  (``inputs: {"image": [...]}``) with a column ``image`` whose cells are base64 text
  of an image file (JPEG, PNG, GIF, BMP, WebP, TIFF), raw file bytes, or
  (height, width, 3) arrays;
- an array, (height, width, 3) or (batch, height, width, 3), of whole numbers from 0
  to 255: integers, or floats such as 12.0 (``inputs``/``instances`` in JSON). NaN,
  infinities, fractions (a 0-1 scaled image) and values outside 0-255 are refused:
  casting them would answer for another image.

Every request is held to ``Limits``, recorded with the model: at most ``max_images``
images, each at most ``max_pixels`` pixels as its header declares (validate.max_pixels),
checked before any pixel is decoded. A refused request names the image (``image 3: ...``)
and is answered 400. Images are resized as they are decoded, so a request holds one
decoded image at a time.

Output: a DataFrame with ``label`` and ``p_<class>`` for each class, one row per image.
Decoding goes through imaging.load_rgb at the model's image_size, the training
pipeline's own conversion (``Classifier.request_probabilities``): a JPEG decodes
DCT-scaled as in training, so a served photo gets training's pixels, and quickly.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgclf.data.imaging import TooLarge, load_rgb

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from imgclf.data.datasets import Examples
    from imgclf.evaluation.scoring import Scored

KERAS_ARTIFACT = "keras_model"  # names of the pyfunc's artifacts
CLASSES_ARTIFACT = "classes"


# validate.max_pixels' default (Pillow's own bomb threshold, ~ 268 MB as RGB): the limit
# of models logged before the limit was recorded with them.
DEFAULT_MAX_PIXELS = 89_478_485
# One model call's batch. 64 images of 12 Mpx (a phone photo) are ~2.3 GB to decode one
# after another; more per request only lengthens the wait of the requests behind it.
DEFAULT_MAX_IMAGES = 64


class InputError(ValueError):
    """A request the model cannot read; the message names the row."""


@dataclass(frozen=True)
class Limits:
    """What one request may hold; recorded as the pyfunc's model config (``log_model``)."""

    max_pixels: int = DEFAULT_MAX_PIXELS  # per image, from its header, before decoding
    max_images: int = DEFAULT_MAX_IMAGES  # per request

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Limits:
        """From a model config (a models logged without one gets the defaults)."""
        config = config or {}
        values = {key: config.get(key, getattr(cls, key)) for key in ("max_pixels", "max_images")}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model config {key}: must be a positive integer, got {value!r}")
        return cls(**values)

    def config(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Classifier:
    model: keras.Model  # uint8 (batch, h, w, 3) -> (batch, 1) sigmoid or (batch, k) softmax
    classes: list[str]  # in output order
    image_size: int  # the model's input side; images are resized to it before batching
    max_pixels: int = DEFAULT_MAX_PIXELS  # files with more are refused from their header (score)

    @classmethod
    def load(cls, model_file: Path, classes_file: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Classifier:
        """A saved model and its classes.json (never unpickles: safe_mode rejects Lambda code)."""
        import keras

        saved = json.loads(classes_file.read_text(encoding="utf-8"))
        model = keras.saving.load_model(model_file, safe_mode=True)
        return cls(
            model=model, classes=list(saved["classes"]), image_size=int(saved["image_size"]), max_pixels=max_pixels
        )

    def score(self, examples: Examples, positive: str | None, threshold: float, batch_size: int) -> Scored:
        """Metrics on labelled files, read through the training input pipeline."""
        from imgclf.data.datasets import predict_examples
        from imgclf.evaluation.scoring import probabilities, score

        outputs = predict_examples(self.model, examples, self.image_size, batch_size, max_pixels=self.max_pixels)
        probs = probabilities(outputs, len(self.classes))
        return score(np.asarray(examples.labels), probs, self.classes, positive, threshold)

    def request_probabilities(self, model_input: Any, limits: Limits) -> np.ndarray:
        """(n, num_classes) probabilities of a request's images (see ``iter_images``), each
        file decoded at this model's image_size as the training pipeline decodes it, at
        most ``limits.max_images`` per model call. What the pyfunc and imgclf serve answer."""
        return self.probabilities(iter_images(model_input, limits, self.image_size), limits.max_images)

    def probabilities(self, images: Iterable[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(n, num_classes) probabilities of (height, width, 3) uint8 images of any sizes.

        Each image is resized as it arrives, so from a generator (``iter_images``) only
        one decoded image is held at a time. Files should be decoded with
        ``load_rgb(..., min_side=self.image_size)``, as training decodes them.
        """
        from imgclf.evaluation.scoring import probabilities

        out = []
        pending = iter(images)
        while batch := [np.asarray(self._resize(im)) for im in islice(pending, batch_size)]:
            out.append(np.asarray(self._predict(np.stack(batch))))
        if not out:
            return np.zeros((0, len(self.classes)))
        return probabilities(np.concatenate(out), len(self.classes))

    # Both compiled once per Classifier, for one signature: called eagerly, the resize's
    # four ops and Keras's predict_on_batch cost ~3 ms of dispatch per served image, more
    # than the model itself. The math is resize_uint8's and the model's, unchanged.
    @cached_property
    def _resize(self) -> Callable[[np.ndarray], Any]:
        import tensorflow as tf

        from imgclf.data.datasets import resize_uint8

        spec = tf.TensorSpec([None, None, 3], tf.uint8)
        return tf.function(lambda image: resize_uint8(image, self.image_size), input_signature=[spec])  # type: ignore[no-any-return]

    @cached_property
    def _predict(self) -> Callable[[np.ndarray], Any]:
        import tensorflow as tf

        spec = tf.TensorSpec([None, self.image_size, self.image_size, 3], tf.uint8)
        return tf.function(lambda batch: self.model(batch, training=False), input_signature=[spec])  # type: ignore[no-any-return]

    def table(self, probs: np.ndarray) -> pd.DataFrame:
        """``label`` and ``p_<class>`` columns, one row per image."""
        import pandas as pd

        frame = pd.DataFrame(probs, columns=self.columns)
        frame.insert(0, "label", self.labels(probs))
        return frame

    def records(self, probs: np.ndarray) -> list[dict[str, Any]]:
        """``table``'s rows as plain dicts, without pandas (imgclf serve's JSON answer)."""
        return [
            {"label": label, **dict(zip(self.columns, map(float, row), strict=True))}
            for label, row in zip(self.labels(probs), probs, strict=True)
        ]

    @property
    def columns(self) -> list[str]:
        """The probability columns: ``p_<class>`` in output order."""
        return probability_columns(self.classes)

    def labels(self, probs: np.ndarray) -> list[str]:
        """The most probable class of each row."""
        return [self.classes[i] for i in probs.argmax(axis=1)] if len(probs) else []


def probability_columns(classes: Iterable[str]) -> list[str]:
    """``p_<class>`` for each class, in order: the columns of every answer and table of
    probabilities (the served model's, ``imgclf predict``'s, evaluate's predictions)."""
    return [f"p_{c}" for c in classes]


def decode_cell(cell: Any, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> np.ndarray:
    """One ``image`` cell (base64 text, file bytes or an array) as (height, width, 3) uint8.

    A file whose header declares more than ``max_pixels`` pixels is refused before decoding;
    with ``min_side`` (the model's image_size) a JPEG decodes DCT-scaled (imaging.load_rgb).
    An array is taken as given.
    """
    if isinstance(cell, str):
        try:
            cell = base64.b64decode(cell, validate=True)
        except (binascii.Error, ValueError):
            raise InputError("not base64 text") from None
    if isinstance(cell, bytes | bytearray):
        try:
            return load_rgb(bytes(cell), max_pixels, min_side)
        except TooLarge as exc:
            raise InputError(f"image too large: {exc} (the model's max_pixels, validate.max_pixels)") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad bytes
            raise InputError(f"not a readable image ({type(exc).__name__})") from None
    return as_uint8_image(_as_array(cell), max_pixels)


def as_uint8_image(array: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A (height, width, 3) array of whole numbers 0-255 as uint8; anything else is refused.

    Floats are accepted only when every value is a whole number: a fraction means the
    client scaled (0-1) or interpolated, and truncating it would answer for another image.
    """
    if array.ndim != 3 or array.shape[-1] != 3 or not array.size:
        raise InputError(f"an image array must be (height, width, 3), got {array.shape}")
    if array.shape[0] * array.shape[1] > max_pixels:
        raise InputError(
            f"image too large: {array.shape[1]}x{array.shape[0]}, over the model's max_pixels {max_pixels}"
        )
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "iuf":  # bool, complex, strings, objects
        raise InputError(f"image array values must be numbers from 0 to 255, got {array.dtype} values")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError("image array values must be numbers from 0 to 255, found NaN or infinity")
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        raise InputError(f"image array values must be numbers from 0 to 255, found {low if low < 0 else high}")
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        fraction = array[array != np.round(array)].flat[0]
        raise InputError(
            f"image array values must be whole numbers from 0 to 255 (uint8 pixels), found {fraction}; "
            "a 0-1 scaled image must be multiplied by 255 and rounded"
        )
    return array.astype(np.uint8)


def _as_array(value: Any) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError:  # ragged nested lists
        raise InputError("an image array must be (height, width, 3) numbers, with rows of one length") from None


def iter_images(model_input: Any, limits: Limits = Limits(), min_side: int | None = None) -> Iterator[np.ndarray]:
    """Every image of a request, in order, decoded one at a time as the caller asks;
    files at ``min_side`` (decode_cell).

    Raises:
        InputError: naming the first bad image (``image 3: ...``); over ``limits.max_images``
            before any is decoded.
    """
    import pandas as pd

    if isinstance(model_input, pd.DataFrame | dict):
        if "image" not in model_input:
            raise InputError("expected a column named 'image' (base64-encoded image bytes)")
        cells: Any = model_input["image"]
        cells = list(cells) if isinstance(cells, pd.Series | np.ndarray | list | tuple) else [cells]
    else:
        array = _as_array(model_input)
        if array.ndim not in (3, 4):
            raise InputError(
                "expected a column 'image', or an array of shape (height, width, 3) or (n, height, width, 3)"
            )
        cells = [array] if array.ndim == 3 else array
    if len(cells) > limits.max_images:
        raise InputError(f"{len(cells)} images in one request; at most {limits.max_images}: send them in several")
    for row, cell in enumerate(cells):
        try:
            yield decode_cell(cell, limits.max_pixels, min_side)
        except InputError as exc:
            raise InputError(f"image {row}: {exc}") from None


def read_images(model_input: Any, limits: Limits = Limits()) -> list[np.ndarray]:
    """Every image of a request, decoded (``iter_images`` holds one at a time)."""
    return list(iter_images(model_input, limits))


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
