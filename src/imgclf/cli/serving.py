"""Using the models: label images, serve the champion over HTTP, open the MLflow UI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgclf.cli.common import app, call, err, out, params_of, quiet_tensorflow

if TYPE_CHECKING:
    from imgclf.params import Params
    from imgclf.serving import predict as command


PANEL = "Using the model"
# Keras imports these at start-up only for its optional scikit-learn wrappers and image
# gallery plots, and does without them when they are missing. Predicting uses neither, and
# they are a third of importing TensorFlow (55 s -> 36 s on a busy 2-core machine).
KERAS_EXTRAS = ("sklearn", "matplotlib")


@contextmanager
def _not_imported(names: tuple[str, ...]) -> Iterator[None]:
    """Within: importing these raises ImportError (Python's meaning of a None in sys.modules).
    After: importable again, so later code that needs one imports it as usual."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


@app.command(rich_help_panel=PANEL)
def predict(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Image files and folders (searched recursively).")],
    model: Annotated[
        str | None,
        typer.Option(help="models:/NAME@ALIAS, models:/NAME/VERSION or a .keras file [default: the champion]"),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write .csv or .json here [default: CSV on stdout]")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=4096, help="Images per model call.")] = 64,
) -> None:
    """Label images: one row per file with the label and each class's probability, or its error."""
    if output is not None and output.suffix not in {".csv", ".json"}:
        err.print(f"error: --output {output}: use a .csv or .json file name")
        raise typer.Exit(2)
    params = call(ctx, lambda: params_of(ctx))  # a typo in params.yaml: its one line before TensorFlow
    with _not_imported(KERAS_EXTRAS):
        quiet_tensorflow()
    from imgclf.serving import predict as command

    def step() -> command.PredictResult:
        if output is not None:
            command.check_output(output)  # before the work, not after it
        uri = model or f"models:/{params.registry.model_name}@champion"
        return command.run(params, paths, uri, batch_size)

    result = call(ctx, step)
    call(ctx, lambda: command.write(result, output))
    failed = len(result.rows) - result.predicted
    err.print(f"predict: {result.predicted} images labelled, {failed} failed" + (f"; {output}" if output else ""))
    if not result.predicted:
        raise typer.Exit(1)


@app.command(rich_help_panel=PANEL)
def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface; 0.0.0.0 exposes the UI to your network.")] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on the project's tracking store (127.0.0.1 unless --host says otherwise)."""
    import sys

    from imgclf import tracking
    from imgclf.serving.supervise import run_child

    params = call(ctx, lambda: params_of(ctx))
    uri = tracking.tracking_uri(params)
    if not uri.startswith("sqlite:///"):
        out.print(f"ui: MLFLOW_TRACKING_URI points at {uri}; open that server's UI instead")
        return
    # The runs list itself: MLflow 3.17's bare address opens its GenAI pages (see tracking.WORKFLOW).
    experiment_id, base = tracking.local_experiment_id(params), f"http://{host}:{port}"
    link = tracking.runs_link(base, experiment_id) if experiment_id else base
    out.print(f"ui: {link} (store {uri}); Ctrl-C stops it")
    # MLflow's server in one process (imgclf.serving.ui_server), not `mlflow ui`'s two
    # rounds of importing it: the UI answers in half the time.
    artifacts = str(tracking.store(params) / "artifacts")
    command = [sys.executable, "-m", "imgclf.serving.ui_server", uri, artifacts, host, str(port)]
    raise typer.Exit(run_child(command, os.environ))


@app.command(rich_help_panel=PANEL)
def serve(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="The model URI [default: models:/NAME@champion]")] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5001,
    host: Annotated[str, typer.Option(help="Interface; 0.0.0.0 exposes the model to your network.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(min=1, help="Server processes, each holding the model.")] = 1,
    max_body_mb: Annotated[
        float, typer.Option(min=0.01, max=1024, help="Largest request body; a larger one is answered 413.")
    ] = 20.0,
    max_images: Annotated[
        int | None,
        typer.Option(min=1, max=4096, help="Most images in one request [default: the model's, 64]."),
    ] = None,
) -> None:
    """Serve the champion over HTTP with MLflow's scoring server (POST /invocations; 127.0.0.1 by default).

    Each image is refused from its header past the model's max_pixels (validate.max_pixels,
    recorded with the model); SIGTERM or Ctrl-C stops the server and its workers.
    """
    import json
    import sys
    import tempfile

    from imgclf import tracking
    from imgclf.serving.server import MAX_BODY_ENV, MODEL_ENV
    from imgclf.serving.supervise import run_child

    def step() -> tuple[Params, str]:
        params = params_of(ctx)
        uri = model or f"models:/{params.registry.model_name}@champion"
        _check_model(params, uri)  # telemetry off too
        return params, uri

    params, uri = call(ctx, step)
    with tempfile.TemporaryDirectory(prefix="imgclf-serve-") as folder:
        local = call(ctx, lambda: _download(uri, folder))
        out.print(f"serve: {uri} on http://{host}:{port}/invocations; Ctrl-C stops it")
        # uvicorn with MLflow's scoring app behind a body limit (imgclf.serving.server):
        # `mlflow models serve` runs the same app, but offers no way to put a limit in front.
        # Each worker is a uvicorn server on its own SO_REUSEPORT socket (imgclf.serving.workers).
        command = [sys.executable, "-m", "imgclf.serving.workers", host, str(port), str(workers)]
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking.tracking_uri(params),
            MODEL_ENV: local,
            MAX_BODY_ENV: str(int(max_body_mb * 2**20)),
        }
        if max_images is not None:
            env["SERVING_MODEL_CONFIG"] = json.dumps({"max_images": max_images})  # MLflow's override of the config
        code = run_child(command, env)
    # Nothing of ours is left to flush, and the interpreter's teardown of MLflow's modules
    # takes seconds (8 on a busy machine): a stop must end within 10 s of its signal.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _download(uri: str, folder: str) -> str:
    """The model's files, once for every worker (MLflow's server would fetch them per worker)."""
    import mlflow

    from imgclf.errors import StageInputError

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # 50 lines of tqdm for a few files
    try:
        return str(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder))
    except Exception as exc:  # noqa: BLE001 - MLflow and the artifact store raise many kinds
        raise StageInputError(f"{uri}: cannot download the model ({str(exc).splitlines()[0][:200]})") from None


def _check_model(params: Params, uri: str) -> None:
    """Fail in one line, before the server starts, when the model URI resolves to nothing."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from imgclf import tracking
    from imgclf.errors import StageInputError

    tracking.connect(params)
    try:
        mlflow.models.get_model_info(uri)
    except (MlflowException, OSError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise StageInputError(f"{uri}: no such model ({first}); run `make run` or `imgclf models`") from None
