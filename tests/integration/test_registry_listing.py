"""`imgclf models` and `imgclf predict` read a local store's registry without MLflow
(imgclf.registry.listing, serving.predict.registered_files): the same versions, aliases,
tags and model files that MLflow's client and pyfunc loader give, on a store MLflow wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from imgclf import tracking
from imgclf.data.imaging import load_rgb
from imgclf.params import Params, load_params
from imgclf.registry import listing
from imgclf.registry.registry import Change
from imgclf.serving.classifier import Classifier
from imgclf.serving.predict import load_classifier, registered_files
from imgclf.serving.pyfunc import load_pyfunc
from stores import copy_trained

pytestmark = pytest.mark.slow


@pytest.fixture
def store(binary: Params, tmp_path: Path) -> Params:
    """The trained project's copy, its registry as `make run` and later runs leave it: version
    1 champion, version 2 challenger, version 3 deleted, a decision left pending."""
    params = load_params(copy_trained(binary.root, tmp_path / "project") / "params.yaml")
    tracking.connect(params)
    client, name = mlflow.MlflowClient(), params.registry.model_name
    first = client.get_model_version(name, "1")
    for _ in range(2):
        client.create_model_version(name, first.source, first.run_id, tags={"gate_decision": "challenger"})
    client.delete_model_version(name, "3")
    client.set_registered_model_alias(name, "challenger", "2")
    change = Change("promote", "2", "1", {"2": {"champion_reason": "manual: x"}}, {"champion": "2"})
    client.set_registered_model_tag(name, "pending_change", change.dumps())
    return params


def test_the_listing_reads_what_mlflow_reads(store: Params) -> None:
    uri, name = tracking.tracking_uri(store), store.registry.model_name
    client = mlflow.MlflowClient()
    found = listing.read(uri, name)
    assert found is not None and found.exists
    model = client.get_registered_model(name)
    assert found.aliases == {a: str(v) for a, v in model.aliases.items()} == {"champion": "1", "challenger": "2"}
    assert found.tags == model.tags and "pending_change" in found.tags
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: -int(v.version))
    assert [v.version for v in found.versions] == [str(v.version) for v in versions] == ["2", "1"]
    for ours, theirs in zip(found.versions, versions, strict=True):
        assert (ours.creation_timestamp, ours.run_id) == (theirs.creation_timestamp, theirs.run_id)
        assert ours.tags == theirs.tags
        assert ours.storage_location == client.get_model_version_download_uri(name, theirs.version)
    assert listing.read(uri, "no-such-model") == listing.Snapshot(exists=False)
    assert listing.read("http://127.0.0.1:5000", name) is None  # a server: MLflow's client answers


def test_models_and_a_registered_models_files_need_no_mlflow(store: Params) -> None:
    """The fast path really is taken: importing MLflow is most of these commands' time."""
    script = """
import json, sys
from imgclf.cli import app
from imgclf.serving.predict import registered_files
try:
    app(["models"], prog_name="imgclf")
except SystemExit as exc:
    assert not exc.code, exc.code
files = registered_files(sys.argv[1], sys.argv[2])
print(json.dumps([[str(f) for f in files[:2]], files[2], "mlflow" in sys.modules]))
"""
    uri = tracking.tracking_uri(store)
    model = f"models:/{store.registry.model_name}@champion"
    done = subprocess.run(
        [sys.executable, "-c", script, model, uri], cwd=store.root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    *table, last = done.stdout.strip().splitlines()
    assert "champion" in "\n".join(table) and "challenger" in "\n".join(table)
    assert "the promote of version 2 was interrupted" in "\n".join(table)
    (keras_file, classes_file), max_pixels, imported = json.loads(last)
    assert not imported
    assert Path(keras_file).name == "model.keras" and Path(classes_file).name == "classes.json"
    assert max_pixels == store.validation.max_pixels


def test_predict_loads_the_registered_model_as_its_pyfunc_does(store: Params) -> None:
    model = f"models:/{store.registry.model_name}@champion"
    ours = load_classifier(model, store)
    theirs = load_pyfunc(model).classifier
    assert isinstance(theirs, Classifier)
    assert (ours.classes, ours.image_size, ours.max_pixels) == (theirs.classes, theirs.image_size, theirs.max_pixels)
    images = [load_rgb(p.read_bytes()) for p in sorted(store.path("raw").rglob("*.png"))[:8]]
    np.testing.assert_allclose(ours.probabilities(images), theirs.probabilities(images), atol=1e-6)
    # A version that is not in the registry, and a URI of another kind, go through MLflow.
    assert registered_files(f"models:/{store.registry.model_name}/9", tracking.tracking_uri(store)) is None
    assert registered_files(f"runs:/{'0' * 32}/model", tracking.tracking_uri(store)) is None
