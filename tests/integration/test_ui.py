"""`imgclf ui` as a user starts it: MLflow's server in one process on the project's store.

It runs MLflow's FastAPI app with the settings `mlflow server` gives its workers
(serving/ui_server.py), so an MLflow upgrade that moves them shows here first.
bench/ui_check.py looks at the pages in a browser; this asks the same server's REST API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import yaml

from imgclf import tracking
from imgclf.params import load_params
from runner import free_port, stop_group, wait_for_http


def post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        result: dict[str, object] = json.loads(answer.read())
        return result


def test_imgclf_ui_serves_the_projects_runs_on_localhost_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({}), encoding="utf-8")
    params = load_params(tmp_path / "params.yaml")
    experiment_id = tracking.use_experiment(params)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("test_f1", 0.5)

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("imgclf")), "ui", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", process, 120)
        with urllib.request.urlopen(base, timeout=30) as page:
            assert b"MLflow" in page.read()  # the UI's own page, not only the API
        found = post(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})
        runs = found["runs"]
        assert isinstance(runs, list) and [r["info"]["run_id"] for r in runs] == [run.info.run_id]
        assert {m["key"]: m["value"] for m in runs[0]["data"]["metrics"]} == {"test_f1": 0.5}
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)  # stops within 10 s, or TimeoutExpired fails the test
    finally:
        stop_group(process, timeout=10)
    said = process.stdout.read().decode() if process.stdout else ""
    # The printed link opens the runs list on the model-training view, on localhost.
    assert tracking.runs_link(base, experiment_id) in said
