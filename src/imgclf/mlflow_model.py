"""The registered model's code: MLflow runs this file to build the pyfunc ("models from code").

It is logged with the model and executed by ``mlflow.pyfunc.load_model`` and
``mlflow models serve``; nothing in imgclf imports it. Logging the code rather than a
pickled object means loading a model never unpickles anything; the Keras file loads
with ``safe_mode=True``. The artifacts are the Keras file and its classes.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel

from imgclf.serving import CLASSES_ARTIFACT, KERAS_ARTIFACT, Classifier, InputError, read_images


class ImageClassifier(PythonModel):
    """Images in (see imgclf.serving), ``label`` and ``p_<class>`` columns out."""

    classifier: Classifier

    def load_context(self, context: Any) -> None:
        from imgclf.tfruntime import import_tensorflow

        import_tensorflow()
        self.classifier = Classifier.load(
            Path(context.artifacts[KERAS_ARTIFACT]), Path(context.artifacts[CLASSES_ARTIFACT])
        )

    # MLflow reads this hint: a DataFrame hint switches its input validation off, which
    # these inputs need; dicts and arrays are accepted as well (imgclf.serving.read_images).
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            images = read_images(model_input)
        except InputError as exc:  # the scoring server answers 400 with this message
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return self.classifier.table(self.classifier.probabilities(images))


mlflow.models.set_model(ImageClassifier())
