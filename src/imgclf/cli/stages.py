"""The pipeline's stages, one command each (what dvc.yaml runs), and the demo data set."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgclf.cli.common import app, call, out, params_of, params_then_tensorflow, quiet_tensorflow

if TYPE_CHECKING:
    from imgclf.data import demo


PANEL = "Pipeline stages (what dvc.yaml runs)"


@app.command("demo-data", rich_help_panel=PANEL)
def demo_data(
    ctx: typer.Context,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated Animal-MNIST classes, or 'all' (default: cat,dog).")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Target folder (default: paths.raw).")] = None,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing if the target folder has any content.")
    ] = False,
    dataset: Annotated[
        str,
        typer.Option(
            help="animal-mnist (built in), or through Keras's download cache: cifar10-catdog "
            "(CIFAR-10's cat and dog photos), fashion-mnist (its 10 classes)."
        ),
    ] = "animal-mnist",
) -> None:
    """Export a demo data set as PNG class folders: the built-in Animal-MNIST silhouettes,
    or real photos from keras.datasets (downloaded once into ~/.keras/datasets/)."""
    from imgclf.data import demo, photosets
    from imgclf.errors import DemoDataError

    def step() -> demo.DemoResult | None:
        if dataset not in photosets.DATASETS:
            raise DemoDataError(f"--dataset: unknown data set {dataset}; choose from {', '.join(photosets.DATASETS)}")
        if dataset != photosets.DEFAULT and classes is not None:
            raise DemoDataError(f"--classes: only for --dataset {photosets.DEFAULT}; {dataset} exports all it has")
        wanted = demo.parse_classes(classes or ",".join(demo.DEFAULT_CLASSES))
        target = out_dir if out_dir is not None else params_of(ctx).path("raw")
        if if_empty and target.is_dir() and any(target.iterdir()):
            return None
        if dataset == photosets.DEFAULT:
            return demo.export(wanted, target)
        quiet_tensorflow()  # keras.datasets imports TensorFlow
        return photosets.export(dataset, target)

    result = call(ctx, step)
    if result is None:
        out.print("demo-data: the target folder has content; nothing written")
        return
    out.print(f"demo-data: {result.written} images written, {result.unchanged} already there, in {result.out}")


@app.command(rich_help_panel=PANEL)
def check(ctx: typer.Context) -> None:
    """Check the whole params.yaml (keys, bounds, paths) before any stage deletes its outputs."""
    from imgclf.stages import check as stage

    written = call(ctx, lambda: stage.run(params_of(ctx)))
    out.print(f"check: {ctx.obj.params} is valid ({written.name} written)")


@app.command(rich_help_panel=PANEL)
def validate(ctx: typer.Context) -> None:
    """Scan the raw folder into a manifest and check it with Great Expectations."""
    from imgclf.stages import validate as stage

    result = call(ctx, lambda: stage.run(params_of(ctx)))
    report = result.report
    files, checks, near = report["files"], report["expectations"], report["near_duplicates"]
    reasons = ", ".join(f"{n} {r}" for r, n in report["by_reason"].items() if n)
    warned = ", ".join(f"{n} {kind}" for kind, n in report["warnings"].items() if n)
    out.print(
        f"validate: {files['ok']} ok, {files['excluded']} excluded{f' ({reasons})' if reasons else ''}, "
        f"{files['skipped']} skipped; {near['groups']} near-duplicate groups ({near['images']} files); "
        f"warnings: {warned or 'none'}; {sum(c['success'] for c in checks.values())}/{len(checks)} expectations passed"
    )
    for paths in report["label_conflicts"][:5]:
        out.print(f"  label_conflict: {', '.join(paths)}")
    if len(report["label_conflicts"]) > 5:
        more = len(report["label_conflicts"]) - 5
        out.print(f"  ... and {more} more: label_conflicts in {params_of(ctx).paths.validation_report}")


@app.command(rich_help_panel=PANEL)
def split(ctx: typer.Context) -> None:
    """Assign each validated image to train, val or test by its content hash."""
    from imgclf.stages import split as stage

    result = call(ctx, lambda: stage.run(params_of(ctx)))
    counts = result.report["counts"]
    out.print("split: " + ", ".join(f"{counts[s]} {s}" for s in stage.SPLITS))


@app.command(rich_help_panel=PANEL)
def augment(ctx: typer.Context) -> None:
    """List the training files; in offline mode, write augmented variants of the train split."""
    params = call(ctx, lambda: params_of(ctx))
    if params.augment.mode == "offline":  # only offline mode runs Keras layers; listing needs no TensorFlow
        quiet_tensorflow()
    from imgclf.stages import augment as stage

    result = call(ctx, lambda: stage.run(params))
    variants = sum(1 for f in result.files if f.variant)
    out.print(f"augment: {len(result.files)} training files ({variants} augmented variants)")


@app.command(rich_help_panel=PANEL)
def train(ctx: typer.Context) -> None:
    """Fit the model (resuming a killed training), tracked in MLflow."""
    params = params_then_tensorflow(ctx)
    from imgclf.stages import train as stage

    result = call(ctx, lambda: stage.run(params))
    for line in result.choices:
        out.print(f"train: {line}")
    last = result.history[-1] if result.history else {}
    devices = f" on {result.replicas} replicas ({result.strategy})" if result.replicas > 1 else ""
    # A multi-worker cluster's other workers log nothing: the chief's run has it all.
    logged = f"MLflow run {result.run_id}" if result.run_id else "not the chief: nothing written or logged"
    out.print(
        f"train: {result.epochs_run} epochs{devices}, "
        f"val_accuracy {float(last.get('val_accuracy') or 'nan'):.4f}; {logged}"
    )


@app.command(rich_help_panel=PANEL)
def evaluate(ctx: typer.Context) -> None:
    """Score the model on the test split; write metrics, predictions and plots."""
    params = params_then_tensorflow(ctx)
    from imgclf.stages import evaluate as stage

    result = call(ctx, lambda: stage.run(params))
    m = result.metrics
    out.print(
        f"evaluate: accuracy {m['accuracy']:.4f}, precision {m['precision']:.4f}, recall {m['recall']:.4f}, "
        f"F1 {m['f1']:.4f} on {m['test_images']} test images; {result.label_suspects} suspected label errors"
    )


@app.command(rich_help_panel=PANEL)
def register(ctx: typer.Context) -> None:
    """Register the trained model in the MLflow registry; the gate decides if it becomes champion."""
    # No TensorFlow up front: the model's scores are evaluate's, and only a champion to
    # score against loads a model (its pyfunc imports TensorFlow quietly).
    params = call(ctx, lambda: params_of(ctx))
    from imgclf.stages import register as stage

    p = call(ctx, lambda: stage.run(params)).promotion
    out.print(f"register: {p['model_name']} version {p['version']}: {p['decision']} ({p['summary']})")
    for reason in p["reasons"]:
        out.print(f"  - {reason}")


@app.command(rich_help_panel=PANEL)
def summary(ctx: typer.Context) -> None:
    """The last run in a few lines: test metrics, the registry's decision, where to look next."""
    from imgclf.evaluation.summary import summary_lines

    params = call(ctx, lambda: params_of(ctx))
    for line in call(ctx, lambda: summary_lines(params)):
        out.print(line)
