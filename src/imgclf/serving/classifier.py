"""The model as users call it: images in, a label and one probability per class out.

``Classifier`` is the core that evaluate, register (scoring the champion), ``imgclf
predict``, the registered MLflow pyfunc (``serving/model_code.py``) and ``imgclf serve``
share. Output: ``label`` and ``p_<class>`` for each class, one row per image. Decoding
goes through imaging.load_rgb at the model's image_size, the training pipeline's own
conversion (``Classifier.request_probabilities``, over serving.requests): a JPEG decodes
DCT-scaled as in training, so a served photo gets training's pixels, and quickly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgclf.serving.requests import DEFAULT_MAX_PIXELS, Limits, iter_images

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from imgclf.data.datasets import Examples
    from imgclf.evaluation.scoring import Scored


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
