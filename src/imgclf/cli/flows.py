"""The pipeline as a Prefect flow: run it once, or serve it on a schedule."""

from __future__ import annotations

from typing import Annotated

import typer

from imgclf.cli.common import app, call, err, out, params_of

PANEL = "Orchestration (Prefect)"


@app.command("run", rich_help_panel=PANEL)
def run_flow(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(help="Rerun every stage, changed or not.")] = False,
    stage: Annotated[
        list[str] | None, typer.Option("--stage", "-s", help="Only this stage (repeatable), in pipeline order.")
    ] = None,
    push: Annotated[bool, typer.Option(help="After success, `dvc push` to the default remote.")] = False,
) -> None:
    """Run the pipeline once as the Prefect flow training-pipeline (PREFECT_API_URL, or a temporary server)."""
    from imgclf.orchestration import flowrun

    def step() -> dict[str, str]:
        params = params_of(ctx)
        return flowrun.run_flow(params, ctx.obj.params.resolve(), force=force, stages=stage, push=push)

    outcome = call(ctx, step)
    out.print("run: " + ", ".join(f"{name} {what}" for name, what in outcome.items()))


@app.command(rich_help_panel=PANEL)
def schedule(
    ctx: typer.Context,
    cron: Annotated[
        str | None, typer.Option(help='Cron schedule, e.g. "0 3 * * *" [default: orchestrate.cron]')
    ] = None,
    interval: Annotated[int | None, typer.Option(min=10, help="Every N seconds instead of a cron schedule.")] = None,
) -> None:
    """Serve the flow as a scheduled Prefect deployment until SIGTERM or Ctrl-C; needs a Prefect server."""
    from imgclf.orchestration import flowrun

    if cron and interval:
        err.print("error: --cron and --interval: choose one")
        raise typer.Exit(2)
    call(ctx, lambda: flowrun.serve(params_of(ctx), ctx.obj.params.resolve(), cron, interval, out.print))
