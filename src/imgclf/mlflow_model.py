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

    # No annotations: MLflow reads them as a request schema, and these inputs (a DataFrame,
    # a dict or an array) fit none of its type hints.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        try:
            images = read_images(model_input)
        except InputError as exc:  # the scoring server answers 400 with this message
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return self.classifier.table(self.classifier.probabilities(images))


mlflow.models.set_model(ImageClassifier())
