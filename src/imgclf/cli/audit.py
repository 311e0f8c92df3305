"""A registered version's record acted on: its lineage, and its rebuild from that record."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from imgclf.cli.common import app, call, err, out, params_of

PANEL = "Lineage and audit"


@app.command(rich_help_panel=PANEL)
def lineage(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="A version number, or an alias (champion, challenger).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of text.")] = False,
) -> None:
    """Trace VERSION to its MLflow run, git commit, data version, split, params and datasets."""
    from imgclf.audit import lineage as core

    found = call(ctx, lambda: core.trace(params_of(ctx), version))
    if as_json:
        typer.echo(json.dumps(found.as_json(), indent=2))
        return
    for line in found.lines():
        out.print(line)


# One paragraph (a docstring's line breaks would show): the first sentence is the command list's.
REPRODUCE_HELP = (
    "Rebuild VERSION from its own record and compare it with the registered model. In a temporary git "
    "worktree: its commit, its logged diff, its data version and params, `dvc repro` up to evaluate. The "
    "verdict is tagged on the version; exit 1 when it is not reproduced, 2 when its record cannot be followed "
    "(data or commit gone)."
)


@app.command(rich_help_panel=PANEL, help=REPRODUCE_HELP, short_help=REPRODUCE_HELP.split(". ")[0] + ".")
def reproduce(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="A version number, or an alias (champion, challenger).")],
    keep: Annotated[bool, typer.Option(help="Keep the temporary git worktree (its path is printed).")] = False,
) -> None:
    from imgclf.audit import reproduce as core

    started = time.monotonic()
    # The stages' output goes to stderr, so stdout holds the verdict alone.
    outcome = call(ctx, lambda: core.reproduce(params_of(ctx), version, keep=keep, say=err.print))
    registered, rebuilt = outcome.registered, outcome.rebuilt
    f1 = f"{registered['f1']:.4f}" if registered.get("f1") is not None else "?"
    out.print(f"registered: content hash {str(registered['content_hash'])[:16]}, test F1 {f1}")
    if rebuilt.failure is None:
        params = "the version's" if not rebuilt.params_differ else f"differ in {', '.join(rebuilt.params_differ)}"
        out.print(
            f"rebuilt:    content hash {str(rebuilt.content_hash)[:16]}, test F1 {rebuilt.metrics.get('f1', 0):.4f}; "
            f"params {params}; MLflow run {rebuilt.run_id} in experiment {outcome.experiment}"
        )
    out.print(outcome.line)
    kept = f"; worktree kept at {outcome.kept} (`git worktree remove --force` it)" if outcome.kept else ""
    out.print(
        f"reproduce: {time.monotonic() - started:.0f} s (the rebuild {outcome.seconds:.0f} s); "
        f"version {outcome.version} tagged reproduce_verdict{kept}"
    )
    if not outcome.reproduced:
        raise typer.Exit(1)
