"""Train, evaluate, ``imgclf predict`` and serving see the same pixels, so give the same answer.

One model (64 px, so DCT scaling matters), four files that each take a different branch
of the decode (a big JPEG scaled 1/8, one with an EXIF rotation, a PNG decoded whole, a
CMYK JPEG), and every path a file takes to the model: the tf.data pipeline as train feeds
it, Classifier.score as evaluate and register use it, predict.run, the registered pyfunc
loaded by MLflow from a real sqlite store, and imgclf serve's FastPath.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from images import encode, exif_rotated_jpeg, rgb, write
from imgclf import tracking
from imgclf.data.datasets import Examples, make_dataset, resize_uint8
from imgclf.data.imaging import load_rgb
from imgclf.evaluation.scoring import probabilities
from imgclf.params import load_params
from imgclf.serving import predict
from imgclf.serving.classifier import Classifier
from imgclf.serving.pyfunc import log_model
from imgclf.serving.server import FastPath, Receive, Scope, Send
from models import tiny_model

pytestmark = pytest.mark.slow

SIZE = 64
FILES = {  # sorted by name: the order imgclf predict lists a folder in
    "a_big.jpg": encode(rgb(1, (2000, 1500)), "JPEG", quality=90),  # 1/8: 250x188
    "b_rotated.jpg": exif_rotated_jpeg((1600, 1200)),  # 1/8, displayed 150x200
    "c_image.png": encode(rgb(2, (300, 200)), "PNG"),  # decoded whole
    "d_cmyk.jpg": encode(rgb(3, (1000, 800)).convert("CMYK"), "JPEG"),  # 1/8: 125x100
}


async def not_ours(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("FastPath handed a plain JSON request to MLflow's app")


def test_every_path_gives_the_same_probabilities(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    files = [write(photos / name, data) for name, data in FILES.items()]
    model_file, classes_file = tmp_path / "model.keras", tmp_path / "classes.json"
    tiny_model(SIZE).save(model_file)
    classes_file.write_text(json.dumps({"classes": ["cat", "dog"], "image_size": SIZE}), encoding="utf-8")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"validate": {"max_pixels": 10_000_000}}), encoding="utf-8")
    params = load_params(params_file)
    classifier = Classifier.load(model_file, classes_file, params.validation.max_pixels)
    examples = Examples(files, [0, 1, 0, 1])
    got: dict[str, np.ndarray] = {}

    # train: the batches model.fit reads (train shuffles them; the pixels are the same).
    batches = list(make_dataset(examples, SIZE, batch_size=3, max_pixels=params.validation.max_pixels))
    fed = np.concatenate([x.numpy() for x, _ in batches])
    got["train"] = probabilities(np.concatenate([classifier.model(x, training=False) for x, _ in batches]), 2)
    # evaluate and register: Classifier.score over the same pipeline.
    got["evaluate"] = classifier.score(examples, None, 0.5, batch_size=2).probabilities
    # imgclf predict, on the folder.
    rows = predict.run(params, [photos], str(model_file), batch_size=2).rows
    assert [row["error"] for row in rows] == [""] * len(files)
    got["predict"] = np.array([[row["p_cat"], row["p_dog"]] for row in rows])
    # The registered pyfunc, loaded by MLflow from a sqlite store, and imgclf serve's fast path.
    cells = [base64.b64encode(data).decode() for data in FILES.values()]
    tracking.use_experiment(params)
    with mlflow.start_run():
        uri = log_model(model_file, classes_file, params.validation.max_pixels)
    pyfunc = mlflow.pyfunc.load_model(uri)
    got["pyfunc"] = pyfunc.predict({"image": cells})[["p_cat", "p_dog"]].to_numpy()
    # The fast path on the same loaded model, as create_app wires it (test_fast_path).
    fast = FastPath(app=not_ours, python_model=pyfunc.unwrap_python_model())
    body = {"dataframe_split": {"columns": ["image"], "data": [[cell] for cell in cells]}}
    status, content = fast.answer(json.dumps(body).encode()) or (0, b"")
    assert status == 200, content
    got["serve"] = np.array([[row["p_cat"], row["p_dog"]] for row in json.loads(content)["predictions"]])

    for path, values in got.items():
        assert np.allclose(values, got["train"], rtol=0, atol=1e-6), (path, values, got["train"])
    # What they agree on is the DCT-scaled decode at the model's size, not a full decode,
    # and a full decode would answer measurably differently: 1e-6 tells the two apart.
    decoded = [resize_uint8(load_rgb(data, min_side=SIZE), SIZE).numpy() for data in FILES.values()]
    assert np.array_equal(fed, np.stack(decoded))
    full = classifier.probabilities([load_rgb(data) for data in FILES.values()])
    assert (np.abs(full - got["train"])[[0, 1, 3], 1] > 1e-4).all()  # the three JPEGs
    assert np.allclose(full[2], got["train"][2], rtol=0, atol=1e-6)  # the PNG
    assert ((got["train"] > 0.01) & (got["train"] < 0.99)).all()  # not saturated: differences show
