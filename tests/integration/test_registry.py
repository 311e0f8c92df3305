"""The model registry on a real MLflow sqlite store in tmp_path: registration, the gate,
promote and rollback, predict, concurrent registrations and the served model."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import yaml
from PIL import Image

import inprocess
from faults import Launcher
from images import learnable_folder, write
from imgclf import tracking
from imgclf.errors import StageInputError
from imgclf.params import Params, load_params
from imgclf.registry import registry
from imgclf.stages import evaluate, register, train
from imgclf.tables import read_csv, write_csv
from pipeline import TINY, make_project, run_pipeline
from runner import free_port, imgclf, wait_for_http
from stores import copy_trained

pytestmark = pytest.mark.slow

NAME = "catdog-cnn"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Params]:
    """Cats and dogs a tiny network tells apart (40 each), through every stage once with an
    F1 floor of 0.8: version 1, the champion. Batches of 4 for 3 epochs: 36 steps settle the
    batch-norm statistics (momentum 0.9) that the test split is scored with."""
    root = tmp_path_factory.mktemp("registry")
    learnable_folder(root / "data" / "raw", ("cat", "dog"), 40)
    train = {**TINY["train"], "batch_size": 4, "epochs": 3}
    settings = {**TINY, "train": train, "register": {"min_metrics": {"f1": 0.8}}}
    (root / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        params = load_params(root / "params.yaml")
        run_pipeline(params)
    yield params


def client_of(params: Params) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{params.root / 'mlruns' / 'mlflow.db'}")


def models_of(params: Params) -> registry.Registry:
    return registry.Registry(client_of(params), NAME)


def promotion_of(params: Params) -> dict:
    return json.loads(params.path("promotion").read_text(encoding="utf-8"))


def test_first_model_becomes_champion_with_provenance(project: Params) -> None:
    models = models_of(project)
    assert [str(v.version) for v in models.versions()] == ["1"]
    assert models.aliases() == {"champion": "1"}  # promoted, so no longer the challenger
    version = models.version("1")
    saved = json.loads(project.path("run").read_text(encoding="utf-8"))
    metrics = json.loads(project.path("metrics").read_text(encoding="utf-8"))
    assert version.run_id == saved["run_id"]
    assert version.tags["content_hash"] == registry.content_hash(project.path("model"))
    assert version.tags["test_f1"] == f"{metrics['f1']:.4f}" and float(version.tags["test_f1"]) >= 0.8
    assert {"git_commit", "data_raw_md5", "data_split_md5", "params_digest"} <= version.tags.keys()
    assert version.tags["gate_decision"] == "champion" and "no champion to beat" in version.tags["gate_reasons"]
    assert "test F1" in version.description
    assert [entry["version"] for entry in models.history()] == ["1"]

    promotion = promotion_of(project)
    assert promotion["decision"] == "champion" and promotion["version"] == "1" and promotion["champion"] is None
    card = project.path("model_card").read_text(encoding="utf-8")
    assert f"# Model card: {NAME} version 1" in card and "decision: **champion**" in card


def test_the_same_model_is_never_a_second_version(project: Params) -> None:
    result = register.run(project)
    assert result.promotion["decision"] == "unchanged" and result.promotion["version"] == "1"
    assert [str(v.version) for v in models_of(project).versions()] == ["1"]
    assert models_of(project).champion() == "1"


@pytest.mark.parametrize("stale", ["evaluated_content_hash", "evaluated_split_md5"])
def test_register_gates_only_on_scores_evaluate_wrote_for_this_model_and_split(project: Params, stale: str) -> None:
    """register takes the candidate's scores from evaluate's reports: reports of another
    model or split (a train or split since) are refused, and nothing is registered."""
    client = client_of(project)
    run_id = json.loads(project.path("run").read_text(encoding="utf-8"))["run_id"]
    tags = client.get_run(run_id).data.tags
    assert tags["evaluated_content_hash"] == registry.content_hash(project.path("model"))
    client.set_tag(run_id, stale, "0" * 32)
    try:
        with pytest.raises(StageInputError, match=r"no scores of this model on this test split; run `imgclf evaluate`"):
            register.run(project)
    finally:
        client.set_tag(run_id, stale, tags[stale])
    assert [str(v.version) for v in models_of(project).versions()] == ["1"]
    assert register.run(project).promotion["decision"] == "unchanged"


def test_a_worse_model_stays_challenger_then_promote_and_rollback(project: Params) -> None:
    # One epoch on shuffled labels: a real model, and a bad one.
    listed = project.path("augment_list")
    rows = read_csv(listed)
    labels = [r["label"] for r in rows]
    random.Random(0).shuffle(labels)
    write_csv(listed, ({**r, "label": label} for r, label in zip(rows, labels, strict=True)), list(rows[0]))
    worse = project.model_copy(update={"train": project.train.model_copy(update={"epochs": 1})})
    train.run(worse)
    evaluate.run(worse)
    promotion = register.run(worse).promotion

    assert promotion["version"] == "2" and promotion["decision"] == "challenger" and not promotion["promoted"]
    assert promotion["champion"]["version"] == "1" and promotion["champion"]["f1"] >= 0.8
    assert any("does not beat the champion" in reason for reason in promotion["reasons"])
    models = models_of(project)
    assert models.aliases() == {"champion": "1", "challenger": "2"}
    assert models.version("2").tags["gate_decision"] == "challenger"
    assert "decision: **challenger**" in project.path("model_card").read_text(encoding="utf-8")

    # The installed command for promote; the others run the same app in this process.
    listing = inprocess.imgclf("models", cwd=project.root)
    assert listing.returncode == 0 and "challenger" in listing.stdout and "champion" in listing.stdout

    promoted = imgclf("promote", "2", "--reason", "checking the pipeline", cwd=project.root)
    assert promoted.returncode == 0, promoted.stderr
    assert "version 2 is champion (was 1)" in promoted.stdout
    assert models.aliases() == {"champion": "2"}
    assert models.version("2").tags["champion_reason"] == "manual: checking the pipeline"
    assert [e["version"] for e in models.history()] == ["1", "2"]

    rolled = inprocess.imgclf("rollback", cwd=project.root)
    assert rolled.returncode == 0, rolled.stderr
    assert "champion is version 1 again (was 2)" in rolled.stdout
    assert models.champion() == "1" and [e["version"] for e in models.history()] == ["1"]

    again = inprocess.imgclf("rollback", cwd=project.root)
    assert again.returncode == 1 and again.stderr.startswith("error: ") and "no earlier champion" in again.stderr
    unknown = inprocess.imgclf("promote", "9", "--reason", "x", cwd=project.root)
    assert unknown.returncode == 1 and "no version '9'" in unknown.stderr
    assert models.champion() == "1"


def test_a_registration_killed_before_its_gate_is_gated_on_the_next_run(binary: Params, tmp_path: Path) -> None:
    params = load_params(copy_trained(binary.root, tmp_path / "project") / "params.yaml")
    tracking.connect(params)  # MLflow's registry store looks a models:/m-... source up in the current store
    models = models_of(params)
    models.client.delete_registered_model(NAME)
    # What a kill between creating the version and running the gate leaves behind.
    saved = json.loads(params.path("run").read_text(encoding="utf-8"))
    models.ensure("")
    tags = {"content_hash": registry.content_hash(params.path("model"))}
    models.create(saved["model_uri"], saved["run_id"], tags, "")

    promotion = register.run(params).promotion
    assert promotion["decision"] == "champion" and promotion["version"] == "1"
    assert models.version("1").tags["gate_decision"] == "champion" and models.champion() == "1"
    assert register.run(params).promotion["decision"] == "unchanged"


def jpeg(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_predict_labels_good_files_and_names_bad_ones(project: Params, tmp_path: Path) -> None:
    raw = project.path("raw")
    folder = tmp_path / "incoming"
    for i, source in enumerate(sorted((raw / "cat").glob("*.png"))[:3] + sorted((raw / "dog").glob("*.png"))[:3]):
        write(folder / "nested" / f"{i}.jpg" if i % 2 else folder / source.name, jpeg(source))
    write(folder / "notes.txt", b"not an image")
    write(folder / "empty.png", b"")
    write(folder / "cut.png", (raw / "cat" / "cat_000.png").read_bytes()[:60])
    write(folder / ".DS_Store", b"clutter")

    out = tmp_path / "labels.csv"
    result = imgclf("predict", folder, tmp_path / "missing.jpg", "--output", out, cwd=project.root)
    assert result.returncode == 0, result.stderr
    assert "6 images labelled, 4 failed" in result.stderr
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert len(rows) == 10 and ".DS_Store" not in rows
    assert {rows[n]["error"] for n in ("notes.txt", "empty.png", "cut.png", "missing.jpg")} == {
        "not_an_image", "empty", "truncated", "not found",
    }  # fmt: skip
    good = [r for r in rows.values() if not r["error"]]
    assert all(r["label"] in {"cat", "dog"} and abs(float(r["p_cat"]) + float(r["p_dog"]) - 1) < 1e-4 for r in good)
    named = [r for r in good if "_" in Path(r["path"]).name]  # cat_000.png ...: the name says the class
    assert len(named) == 3 and sum(r["label"] == Path(r["path"]).name.split("_")[0] for r in named) >= 2

    # A local model file, JSON output; a run where nothing is an image fails (in this process).
    as_json = tmp_path / "labels.json"
    local = inprocess.imgclf("predict", folder, "--model", project.path("model"), "--output", as_json, cwd=project.root)
    assert local.returncode == 0, local.stderr
    assert len(json.loads(as_json.read_text(encoding="utf-8"))) == 9
    nothing = inprocess.imgclf("predict", folder / "notes.txt", cwd=project.root)
    assert nothing.returncode == 1 and "0 images labelled, 1 failed" in nothing.stderr
    assert nothing.stdout.splitlines()[1].endswith(",not_an_image")


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_served_champion_answers_a_posted_jpeg(project: Params) -> None:
    port = free_port()
    command = [str(Path(sys.executable).with_name("imgclf")), "serve", "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=project.root, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/ping", server, 180)
        dog = sorted((project.path("raw") / "dog").glob("*.png"))[0]
        image = base64.b64encode(jpeg(dog)).decode()
        status, answer = post(f"{url}/invocations", {"dataframe_split": {"columns": ["image"], "data": [[image]]}})
        assert status == 200, answer
        [prediction] = answer["predictions"]
        assert prediction["label"] == "dog" and abs(prediction["p_cat"] + prediction["p_dog"] - 1) < 1e-6

        pixels = Image.open(dog).convert("RGB").resize((40, 30))
        status, answer = post(f"{url}/invocations", {"inputs": [np.asarray(pixels).tolist()]})
        assert status == 200 and answer["predictions"][0]["label"] in {"cat", "dog"}

        status, answer = post(f"{url}/invocations", {"dataframe_split": {"columns": ["image"], "data": [["aGk="]]}})
        assert status == 400 and "image 0: not a readable image" in answer["message"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def said(log: Path, prefix: str) -> list[str]:
    """The lines of a launched command's output that start with ``prefix``."""
    return [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith(prefix)]


def test_concurrent_registrations_keep_every_version_and_one_champion(
    launched: Launcher, binary: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two projects share one store; each registers three times at once (six processes);
    then a promote and a rollback race. The processes are forked from the fault launcher,
    whose imports are done: the race is between six real processes, without six imports."""
    first = copy_trained(binary.root, tmp_path / "p1")  # the shared store is this copy's
    store = f"sqlite:///{first / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    second = make_project(tmp_path / "p2", ("cat", "dog"), train={"seed": 2})
    run_pipeline(second)
    projects = [load_params(first / "params.yaml"), second]
    for params in projects:
        params.path("promotion").unlink()
    # Start from nothing registered, as two fresh pipelines would.
    client = mlflow.MlflowClient(tracking_uri=store)
    client.delete_registered_model(NAME)

    def job(params: Params, index: int, *args: str) -> dict[str, Any]:
        log = tmp_path / f"{index}.log"
        return {"cwd": str(params.root), "args": list(args), "log": str(log), "env": {"MLFLOW_TRACKING_URI": store}}

    jobs = [job(p, i, "register") for i, p in enumerate(projects * 3)]
    results = launched.run(jobs, parallel=len(jobs))
    logs = [Path(j["log"]) for j in jobs]
    assert [r.code for r in results] == [0] * 6, [log.read_text(encoding="utf-8")[-2000:] for log in logs]

    models = registry.Registry(client, NAME)
    versions = models.versions()
    hashes = [v.tags["content_hash"] for v in versions]
    assert len(versions) == 2 and len(set(hashes)) == 2  # one version per model, none lost
    assert {registry.content_hash(p.path("model")) for p in projects} == set(hashes)
    # Of each three, one process registered and the others found the version already there.
    decisions = [said(log, "register: ")[0].split(": ")[2].split()[0] for log in logs]
    assert decisions.count("unchanged") == 4, decisions
    champion = models.champion()
    assert champion is not None and models.history()[-1]["version"] == champion

    # A manual promote and a rollback at the same time: serialised, history and alias agree.
    other = next(str(v.version) for v in versions if str(v.version) != champion)
    jobs = [job(projects[0], 10, "promote", other, "--reason", "race"), job(projects[0], 11, "rollback")]
    ran = launched.run(jobs)
    finished = [(r.code, Path(j["log"]).read_text(encoding="utf-8")) for r, j in zip(ran, jobs, strict=True)]
    # Either order is fine (a rollback first can make the promote a no-op, "already the
    # champion"); a failure is one clear line, never a crash.
    assert any(code == 0 for code, _ in finished), finished
    assert all(code == 0 or (code == 1 and said_error(out)) for code, out in finished), finished
    assert models.champion() == models.history()[-1]["version"]
    assert len(models.versions()) == 2


def said_error(output: str) -> bool:
    """One ``error: `` line and no traceback."""
    return "Traceback" not in output and sum(line.startswith("error: ") for line in output.splitlines()) == 1
