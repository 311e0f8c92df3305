"""The ``imgclf`` command line: argument handling only; each command calls one entry function.

Heavy libraries (TensorFlow, MLflow, Great Expectations) are imported inside the
commands that use them, so ``imgclf --help`` answers at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from imgclf.errors import ImgclfError

if TYPE_CHECKING:
    from imgclf.params import Params
    from imgclf.registry import Registry

T = TypeVar("T")

app = typer.Typer(
    help="Train, validate, track and ship image classifiers from a folder of labelled images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# No wrapping and no markup: an error stays one line, whatever brackets the message holds.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


@dataclass(frozen=True)
class Options:
    params: Path
    debug: bool


@app.callback()
def main(
    ctx: typer.Context,
    params: Annotated[
        Path, typer.Option("--params", "-p", help="The params file; its folder is the project root.")
    ] = Path("params.yaml"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each step does.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not (verbose or debug):
        # MLflow narrates at INFO/WARNING (uv project detected, pip version unknown, ...) and
        # sets its logger's level from this variable when it is imported.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    # MLflow draws a tqdm bar for every artifact download: noise in logs and in predict's output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    ctx.obj = Options(params=params, debug=debug)


def _call(ctx: typer.Context, step: Callable[[], T]) -> T:
    """Run one command's work; an expected failure becomes one line and its exit code."""
    try:
        return step()
    except ImgclfError as exc:
        if ctx.obj.debug:
            raise
        err.print(f"error: {exc}")
        raise typer.Exit(exc.exit_code) from None


def _params(ctx: typer.Context) -> Params:
    from imgclf.params import load_params

    return load_params(ctx.obj.params)


@app.command("demo-data")
def demo_data(
    ctx: typer.Context,
    classes: Annotated[str, typer.Option(help="Comma-separated Animal-MNIST classes, or 'all'.")] = "cat,dog",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Target folder [default: paths.raw]")] = None,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing if the target folder has any content.")
    ] = False,
) -> None:
    """Export the built-in demo data set (Animal-MNIST silhouettes) as PNG class folders."""
    from imgclf import demo

    def step() -> demo.DemoResult | None:
        wanted = demo.parse_classes(classes)
        target = out_dir if out_dir is not None else _params(ctx).path("raw")
        if if_empty and target.is_dir() and any(target.iterdir()):
            return None
        return demo.export(wanted, target)

    result = _call(ctx, step)
    if result is None:
        out.print("demo-data: the target folder has content; nothing written")
        return
    out.print(f"demo-data: {result.written} images written, {result.unchanged} already there, in {result.out}")


@app.command()
def validate(ctx: typer.Context) -> None:
    """Scan the raw folder into a manifest and check it with Great Expectations."""
    from imgclf.stages import validate as stage

    result = _call(ctx, lambda: stage.run(_params(ctx)))
    files, checks = result.report["files"], result.report["expectations"]
    reasons = ", ".join(f"{n} {r}" for r, n in result.report["by_reason"].items() if n)
    out.print(
        f"validate: {files['ok']} ok, {files['excluded']} excluded{f' ({reasons})' if reasons else ''}, "
        f"{files['skipped']} skipped; {sum(c['success'] for c in checks.values())}/{len(checks)} expectations passed"
    )


@app.command()
def split(ctx: typer.Context) -> None:
    """Assign each validated image to train, val or test by its content hash."""
    from imgclf.stages import split as stage

    result = _call(ctx, lambda: stage.run(_params(ctx)))
    counts = result.report["counts"]
    out.print("split: " + ", ".join(f"{counts[s]} {s}" for s in stage.SPLITS))


@app.command()
def augment(ctx: typer.Context) -> None:
    """List the training files; in offline mode, write augmented variants of the train split."""
    _quiet_tensorflow()
    from imgclf.stages import augment as stage

    result = _call(ctx, lambda: stage.run(_params(ctx)))
    variants = sum(1 for f in result.files if f.variant)
    out.print(f"augment: {len(result.files)} training files ({variants} augmented variants)")


@app.command()
def train(ctx: typer.Context) -> None:
    """Fit the model (resuming a killed training), tracked in MLflow."""
    _quiet_tensorflow()
    from imgclf.stages import train as stage

    result = _call(ctx, lambda: stage.run(_params(ctx)))
    last = result.history[-1] if result.history else {}
    out.print(
        f"train: {result.epochs_run} epochs, val_accuracy {float(last.get('val_accuracy') or 'nan'):.4f}; "
        f"MLflow run {result.run_id}"
    )


@app.command()
def evaluate(ctx: typer.Context) -> None:
    """Score the model on the test split; write metrics, predictions and plots."""
    _quiet_tensorflow()
    from imgclf.stages import evaluate as stage

    result = _call(ctx, lambda: stage.run(_params(ctx)))
    m = result.metrics
    out.print(
        f"evaluate: accuracy {m['accuracy']:.4f}, precision {m['precision']:.4f}, recall {m['recall']:.4f}, "
        f"F1 {m['f1']:.4f} on {m['test_images']} test images"
    )


@app.command()
def register(ctx: typer.Context) -> None:
    """Register the trained model in the MLflow registry; the gate decides if it becomes champion."""
    _quiet_tensorflow()
    from imgclf.stages import register as stage

    p = _call(ctx, lambda: stage.run(_params(ctx))).promotion
    out.print(f"register: {p['model_name']} version {p['version']}: {p['decision']} ({p['summary']})")
    for reason in p["reasons"]:
        out.print(f"  - {reason}")


@app.command("models")
def list_models(ctx: typer.Context) -> None:
    """List the registered model's versions with aliases, metrics and dates."""
    from rich.table import Table

    def step() -> tuple[str, list[dict[str, str]]]:
        from imgclf import registry

        models = _registry(ctx)
        aliases = models.aliases()
        return models.name, [registry.describe_version(v, aliases) for v in models.versions()]

    name, rows = _call(ctx, step)
    if not rows:
        out.print(f"models: {name} has no versions yet; run `make run` or `imgclf register`")
        return
    table = Table(title=name)
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    # A pipe gets 80 columns, too few for this table.
    Console(highlight=False, width=None if out.is_terminal else 140).print(table)


@app.command()
def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the registry.")],
) -> None:
    """Make VERSION the champion by hand (the gate is not consulted), recording why."""

    def step() -> tuple[str, str | None]:
        from imgclf import registry, tracking

        models = _registry(ctx)
        with registry.decision_lock(tracking.tracking_uri(_params(ctx))):
            return models.name, models.promote(version, f"manual: {reason}")

    name, previous = _call(ctx, step)
    out.print(f"promote: {name} version {version} is champion (was {previous or 'none'})")


@app.command()
def rollback(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why; recorded in the registry.")] = "rollback",
) -> None:
    """Give champion back to the previous champion."""

    def step() -> tuple[str, tuple[str, str]]:
        from imgclf import registry, tracking

        models = _registry(ctx)
        with registry.decision_lock(tracking.tracking_uri(_params(ctx))):
            return models.name, models.rollback(f"rollback: {reason}")

    name, (was, now) = _call(ctx, step)
    out.print(f"rollback: {name} champion is version {now} again (was {was})")


def _registry(ctx: typer.Context) -> Registry:
    import mlflow

    from imgclf import registry, tracking

    params = _params(ctx)
    tracking.connect(params)
    return registry.Registry(mlflow.MlflowClient(), params.registry.model_name)


@app.command()
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
    _quiet_tensorflow()
    from imgclf import predict as command

    if output is not None and output.suffix not in {".csv", ".json"}:
        err.print(f"error: --output {output}: use a .csv or .json file name")
        raise typer.Exit(2)

    def step() -> command.PredictResult:
        params = _params(ctx)
        uri = model or f"models:/{params.registry.model_name}@champion"
        return command.run(params, paths, uri, batch_size)

    result = _call(ctx, step)
    command.write(result, output)
    failed = len(result.rows) - result.predicted
    err.print(f"predict: {result.predicted} images labelled, {failed} failed" + (f"; {output}" if output else ""))
    if not result.predicted:
        raise typer.Exit(1)


def _quiet_tensorflow() -> None:
    from imgclf.tfruntime import import_tensorflow

    import_tensorflow()


@app.command()
def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface; 0.0.0.0 exposes the UI to your network.")] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on the project's tracking store (127.0.0.1 unless --host says otherwise)."""
    import subprocess
    import sys

    from imgclf import tracking

    uri = tracking.tracking_uri(_call(ctx, lambda: _params(ctx)))
    if not uri.startswith("sqlite:///"):
        out.print(f"ui: MLFLOW_TRACKING_URI points at {uri}; open that server's UI instead")
        return
    out.print(f"ui: http://{host}:{port} (store {uri}); Ctrl-C stops it")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    # No background job runner: the UI needs none, and it would start seven more processes.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    raise typer.Exit(subprocess.call(command, env=env))


@app.command("run")
def run_flow(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(help="Rerun every stage, changed or not.")] = False,
    stage: Annotated[
        list[str] | None, typer.Option("--stage", "-s", help="Only this stage (repeatable), in pipeline order.")
    ] = None,
    push: Annotated[bool, typer.Option(help="After success, `dvc push` to the default remote.")] = False,
) -> None:
    """Run the pipeline once as the Prefect flow training-pipeline (PREFECT_API_URL, or a temporary server)."""
    from imgclf import orchestration

    def step() -> dict[str, str]:
        params = _params(ctx)
        return orchestration.run_flow(params, ctx.obj.params.resolve(), force=force, stages=stage, push=push)

    outcome = _call(ctx, step)
    out.print("run: " + ", ".join(f"{name} {what}" for name, what in outcome.items()))


@app.command()
def schedule(
    ctx: typer.Context,
    cron: Annotated[
        str | None, typer.Option(help='Cron schedule, e.g. "0 3 * * *" [default: orchestrate.cron]')
    ] = None,
    interval: Annotated[int | None, typer.Option(min=10, help="Every N seconds instead of a cron schedule.")] = None,
) -> None:
    """Serve the flow as a scheduled Prefect deployment (until Ctrl-C); needs a Prefect server (PREFECT_API_URL)."""
    from imgclf import orchestration

    if cron and interval:
        err.print("error: --cron and --interval: choose one")
        raise typer.Exit(2)
    _call(ctx, lambda: orchestration.serve(_params(ctx), ctx.obj.params.resolve(), cron, interval))


@app.command()
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
        params = _params(ctx)
        uri = model or f"models:/{params.registry.model_name}@champion"
        _check_model(params, uri)  # telemetry off too
        return params, uri

    params, uri = _call(ctx, step)
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
