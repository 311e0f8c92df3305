"""The model registry by hand: list versions, promote one, roll back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from imgclf.cli.common import app, call, out, params_of

if TYPE_CHECKING:
    from imgclf.registry.registry import Change, Registry


PANEL = "Model registry"


@app.command("models", rich_help_panel=PANEL)
def list_models(ctx: typer.Context) -> None:
    """List the registered model's versions with aliases, metrics and dates."""
    from rich.table import Table

    def step() -> tuple[str, list[dict[str, str]], Change | None]:
        from imgclf import tracking
        from imgclf.registry import listing, registry

        params = params_of(ctx)
        name = params.registry.model_name
        # A local store is read without MLflow: importing it is most of this command's time.
        found = listing.read(tracking.tracking_uri(params), name)
        if found is not None:
            rows = [registry.describe_version(v, found.aliases) for v in found.versions]
            return name, rows, registry.pending_change(name, found.tags)
        models = _registry(ctx)
        aliases = models.aliases()
        return models.name, [registry.describe_version(v, aliases) for v in models.versions()], models.pending()

    name, rows, pending = call(ctx, step)
    if pending is not None:
        out.print(
            f"models: the {pending.op} of version {pending.version} was interrupted; the next "
            "`imgclf register`, `promote` or `rollback` finishes it"
        )
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


@app.command(rich_help_panel=PANEL)
def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the registry.")],
) -> None:
    """Make VERSION the champion by hand (the gate is not consulted), recording why."""

    def step() -> tuple[str, str | None]:
        from imgclf import tracking
        from imgclf.registry import registry

        models = _registry(ctx)
        with registry.decision_lock(tracking.tracking_uri(params_of(ctx))):
            return models.name, models.promote(version, f"manual: {reason}")

    name, previous = call(ctx, step)
    out.print(f"promote: {name} version {version} is champion (was {previous or 'none'})")


@app.command(rich_help_panel=PANEL)
def rollback(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why; recorded in the registry.")] = "rollback",
) -> None:
    """Give champion back to the previous champion."""

    def step() -> tuple[str, tuple[str, str]]:
        from imgclf import tracking
        from imgclf.registry import registry

        models = _registry(ctx)
        with registry.decision_lock(tracking.tracking_uri(params_of(ctx))):
            return models.name, models.rollback(f"rollback: {reason}")

    name, (was, now) = call(ctx, step)
    out.print(f"rollback: {name} champion is version {now} again (was {was})")


def _registry(ctx: typer.Context) -> Registry:
    import mlflow

    from imgclf import tracking
    from imgclf.registry import registry

    params = params_of(ctx)
    tracking.connect(params)
    return registry.Registry(mlflow.MlflowClient(), params.registry.model_name)
