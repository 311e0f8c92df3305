"""What every command shares: the Typer app, its global options, and how an expected
failure becomes one line and an exit code."""

from __future__ import annotations

import atexit
import gc
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


PREFECT_LOGGED = {"run", "schedule"}  # commands whose logging Prefect formats


def skip_exit_collection() -> None:
    """Registered before any heavy import, so it runs after every other exit handler.

    Tearing down TensorFlow's and MLflow's object graph ran the cycle collector over
    millions of objects: 3 s at the end of each stage, 15 s of every `dvc repro`. Frozen,
    the objects are still released and files closed as modules unload; only that last
    collection of cycles is skipped, and the process ends in 0.3 s.
    """
    gc.disable()
    gc.freeze()


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
    if ctx.invoked_subcommand in PREFECT_LOGGED:
        # Prefect installs its own console handler (flow and task run names, times) only
        # when the root logger has none of ours.
        if debug or verbose:
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "DEBUG" if debug else "INFO")
    else:
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
    atexit.register(skip_exit_collection)
    ctx.obj = Options(params=params, debug=debug)


def call(ctx: typer.Context, step: Callable[[], T]) -> T:
    """Run one command's work; an expected failure becomes one line and its exit code."""
    try:
        return step()
    except ImgclfError as exc:
        if ctx.obj.debug:
            raise
        err.print(f"error: {exc}")
        raise typer.Exit(exc.exit_code) from None


def params_of(ctx: typer.Context) -> Params:
    from imgclf.params import load_params

    return load_params(ctx.obj.params)


def quiet_tensorflow() -> None:
    """TensorFlow imported with its C++ logging and oneDNN notices quieted, before a stage imports it."""
    from imgclf.tfruntime import import_tensorflow

    import_tensorflow()


def params_then_tensorflow(ctx: typer.Context) -> Params:
    """params.yaml parsed, then TensorFlow imported quietly: a typo in params.yaml is its one
    line and exit code at once, not after the 5-10 s that importing TensorFlow takes."""
    params = call(ctx, lambda: params_of(ctx))
    quiet_tensorflow()
    return params
