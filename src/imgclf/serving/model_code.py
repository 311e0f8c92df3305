"""The registered model's code: MLflow runs this file to build the pyfunc ("models from code").

It is logged with the model and executed by ``mlflow.pyfunc.load_model`` and
``mlflow models serve``; nothing in imgclf imports it. Logging the code rather than a
pickled object means loading a model never unpickles anything; the Keras file loads
with ``safe_mode=True``. The artifacts are the Keras file and its classes.json; the
model config holds the request limits (imgclf.serving.requests.Limits: max_pixels from
validate.max_pixels, max_images), which ``mlflow.pyfunc.load_model(model_config=...)``
or MLflow's SERVING_MODEL_CONFIG can override.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel

from imgclf.serving.classifier import Classifier
from imgclf.serving.pyfunc import CLASSES_ARTIFACT, KERAS_ARTIFACT
from imgclf.serving.requests import InputError, Limits


class ImageClassifier(PythonModel):
    """Images in (see imgclf.serving.classifier), ``label`` and ``p_<class>`` columns out."""

    classifier: Classifier
    limits: Limits

    def load_context(self, context: Any) -> None:
        from imgclf.tfruntime import import_tensorflow

        import_tensorflow()
        self.limits = Limits.from_config(context.model_config)
        self.classifier = Classifier.load(
            Path(context.artifacts[KERAS_ARTIFACT]),
            Path(context.artifacts[CLASSES_ARTIFACT]),
            max_pixels=self.limits.max_pixels,
        )

    # MLflow reads this hint: a DataFrame hint switches its input validation off, which
    # these inputs need; dicts and arrays are accepted as well (imgclf.serving.requests.iter_images).
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            # Decoded one at a time as the batch fills: an error may come after some were.
            probs = self.classifier.request_probabilities(model_input, self.limits)
        except InputError as exc:  # the scoring server answers 400 with this message
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return self.classifier.table(probs)


mlflow.models.set_model(ImageClassifier())
