"""Using the models: label images, serve the champion over HTTP, open the MLflow UI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgclf.cli.common import app, call, err, out, params_of, quiet_tensorflow

if TYPE_CHECKING:
    from imgclf import predict as command
    from imgclf.params import Params


PANEL = "Using the model"


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
    quiet_tensorflow()
    from imgclf import predict as command

    if output is not None and output.suffix not in {".csv", ".json"}:
        err.print(f"error: --output {output}: use a .csv or .json file name")
        raise typer.Exit(2)

    def step() -> command.PredictResult:
        params = params_of(ctx)
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
    import subprocess
    import sys

    from imgclf import tracking

    uri = tracking.tracking_uri(call(ctx, lambda: params_of(ctx)))
    if not uri.startswith("sqlite:///"):
        out.print(f"ui: MLFLOW_TRACKING_URI points at {uri}; open that server's UI instead")
        return
    out.print(f"ui: http://{host}:{port} (store {uri}); Ctrl-C stops it")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    # No background job runner: the UI needs none, and it would start seven more processes.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    raise typer.Exit(subprocess.call(command, env=env))


@app.command(rich_help_panel=PANEL)
def serve(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="The model URI [default: models:/NAME@champion]")] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5001,
    host: Annotated[str, typer.Option(help="Interface; 0.0.0.0 exposes the model to your network.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(min=1, help="Server processes, each holding the model.")] = 1,
) -> None:
    """Serve the champion over HTTP with `mlflow models serve` (POST /invocations; 127.0.0.1 by default)."""
    import subprocess
    import sys

    from imgclf import tracking
    from imgclf.orchestration import scripts_first

    def step() -> tuple[Params, str]:
        params = params_of(ctx)
        uri = model or f"models:/{params.registry.model_name}@champion"
        _check_model(params, uri)  # telemetry off too
        return params, uri

    params, uri = call(ctx, step)
    out.print(f"serve: {uri} on http://{host}:{port}/invocations; Ctrl-C stops it")
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local"]
    command += ["-h", host, "-p", str(port), "-w", str(workers)]
    # MLflow starts `uvicorn` by name: this environment's, whatever PATH the caller has.
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(params), "PATH": scripts_first()}
    raise typer.Exit(subprocess.call(command, env=env))


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
