"""The CLI reads params.yaml before it imports TensorFlow, and ``imgclf --help`` imports no
heavy library: a typo costs its one line at once, not after a 5-10 s TensorFlow import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Each command in one fresh interpreter, in turn: the libraries it had imported when it exited.
SCRIPT = """
import json, sys
from imgclf.cli import app

HEAVY = ("tensorflow", "keras", "mlflow", "great_expectations", "prefect")
seen = {}
for args in json.loads(sys.argv[1]):
    try:
        app(args, prog_name="imgclf")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    seen[" ".join(args)] = [code, sorted(name for name in HEAVY if name in sys.modules)]
print(json.dumps(seen))
"""

# Every command that may import TensorFlow for its work (augment in offline mode, register with a champion).
TENSORFLOW_COMMANDS = [["augment"], ["train"], ["evaluate"], ["register"], ["predict", "photo.jpg"]]


def run(args: list[list[str]], cwd: Path) -> tuple[dict[str, list], str]:
    # The project's own store: mlflow.set_tracking_uri in an earlier test of this worker
    # leaves MLFLOW_TRACKING_URI in the environment.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_a_params_error_is_reported_before_tensorflow_is_imported(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 0\n", encoding="utf-8")
    seen, stderr = run(TENSORFLOW_COMMANDS, tmp_path)
    assert seen == {" ".join(args): [2, []] for args in TENSORFLOW_COMMANDS}
    assert stderr.splitlines() == ["error: params.yaml: train.epochs: must be between 1 and 1000"] * 5


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    seen, _ = run([["--help"], ["train", "--help"]], tmp_path)
    assert seen == {"--help": [0, []], "train --help": [0, []]}


def test_listing_training_files_and_the_run_summary_import_no_heavy_library(tmp_path: Path) -> None:
    """Online augment only lists files, and `imgclf summary` only reads two reports: neither
    may pay TensorFlow's 5-10 s import (make run calls both)."""
    (tmp_path / "params.yaml").write_text("{}\n", encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "split.csv").write_text("path,label,split\r\ncat/a.png,cat,train\r\n", encoding="utf-8")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps({"f1": 0.9, "test_images": 10}), encoding="utf-8")
    promotion = {"model_name": "m", "version": "1", "decision": "champion", "reasons": ["first version"]}
    (tmp_path / "reports" / "promotion.json").write_text(json.dumps(promotion), encoding="utf-8")
    seen, stderr = run([["augment"], ["summary"]], tmp_path)
    assert seen == {"augment": [0, []], "summary": [0, []]}, stderr


def test_lineage_reads_a_local_store_without_mlflow(tmp_path: Path) -> None:
    """`imgclf lineage` answers in a second or two: the registry, the run and its params come
    from the sqlite store, the data's whereabouts from DVC, none through MLflow."""
    import mlflow

    (tmp_path / "params.yaml").write_text("{}\n", encoding="utf-8")
    (tmp_path / "mlruns").mkdir()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.create_experiment("imgclf", artifact_location=(tmp_path / "artifacts").as_uri())
    trained = client.create_run(experiment, tags={"git_commit": "unknown", "data_raw_md5": "untracked"}).info.run_id
    client.log_param(trained, "train.epochs", "3")
    client.create_registered_model("catdog-cnn")
    client.create_model_version("catdog-cnn", "file:///model", run_id=trained, tags={"content_hash": "c"})
    client.set_registered_model_alias("catdog-cnn", "champion", "1")
    seen, stderr = run([["lineage", "champion"], ["lineage", "1", "--json"]], tmp_path)
    assert seen == {"lineage champion": [0, []], "lineage 1 --json": [0, []]}, stderr
