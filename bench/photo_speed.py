"""Photo benchmark: imgclf's defaults through the real stages vs the seeds' recipe, same split.

What it does (figures are printed; nothing here fails the run):

1. Peak: this machine's fp32 matmul rate, the best of a few ``tf.matmul`` of 4096x4096
   (after one warm-up), measured in this run.
2. Two photo-like sets from bench/photogen.py, under bench/.work/photo_speed/ (reused
   while the generator, its settings and the seed are unchanged): ``catdog`` (cat, dog;
   1000 per class) and ``animals10`` (all ten Animal-MNIST classes; 300 per class).
3. For each set and each split seed (``--seeds N``: split.seed 0 .. N-1), a throwaway
   project under bench/.work/photo_speed/<set>/seed<k>/: the images hard-linked into
   data/raw, a copy of the project's params.yaml with nothing changed but split.seed
   (``--quick``: train.epochs 2), and ``imgclf validate``, ``split``, ``augment``,
   ``train``, ``evaluate`` run as subprocesses through the real CLI, with
   ``MLFLOW_TRACKING_URI`` at a sqlite store in that project. So ours is whatever the
   defaults are today (``auto`` resolved by the train stage, as a user gets it).
4. The seeds' recipe (bench/train_speed.py's ``seeds``: seed_cnn at 150 px on
   ``ImageDataGenerator`` batches, Adam, 10 epochs, no validation) in this process,
   fitted on the same split's train + val images and scored on the same test files.
5. ``catdog``, seed 0: the detail check. ``imgclf train`` and ``evaluate`` again in the
   same project with ``train.image_size: 28``: the same network, a thumbnail's input.
   The pictures' class evidence is a coat texture a 28-px thumbnail cannot resolve, so
   F1 should fall by 0.05 or more.

Printed per set and seed: test F1 (the positive class "dog" for 2 classes, macro for
more) with a 95 % bootstrap interval over the test images, the paired difference ours -
recipe (resampling the same test images for both), fit seconds, training images/s
(training images x epochs run / fit seconds), and training FLOP/s as a fraction of the
peak (3 x the forward FLOPs of the Conv/Dense kernels at the model's input size, per
training image, x images x epochs, / fit seconds). Ours: "fit" is the MLflow run's
start to its last epoch's metrics (model build and the run's params and dataset
logging, ~1 s, included; TensorFlow's import and saving the model are not), which the
train stage records; also the train stage's whole wall time. The recipe's fit is
``model.fit``'s wall time (first-epoch decoding included in both). Then the goals:
2 classes, our F1 - recipe's >= 0.02 and our fit <= 1/3 of the recipe's; 10 classes,
our macro F1 >= the recipe's; with several seeds, means and min-max spreads. Also how
long each part of the benchmark took and the load average.

Run (2 cores: about 35 min for the defaults, most of it the recipe's fits):

    uv run --frozen python bench/photo_speed.py [--seeds N] [--sets catdog,animals10]
    uv run --frozen python bench/photo_speed.py --quick   # small sets, 2 epochs: a smoke run

It writes only under bench/.work/photo_speed/ and the system's temporary folder, and
opens no socket: the MLflow stores are sqlite files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import photogen
import yaml
from train_speed import SEED_SIZE, seeds
from validate_speed import timed

from imgclf import telemetry
from imgclf.data.datasets import Examples, split_examples
from imgclf.tables import read_csv

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "photo_speed"
IMGCLF = Path(sys.executable).with_name("imgclf")
SETS = {"catdog": 1000, "animals10": 300}  # pictures per class
QUICK_SETS = {"catdog": 60, "animals10": 30}  # enough for validate's and split's checks
STAGES = ("validate", "split", "augment", "train", "evaluate")
KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")  # the weights whose FLOPs count
DETAIL_SIZE = 28  # px: a thumbnail, the demo's size
GOAL_F1_GAIN, GOAL_SPEEDUP, DETAIL_DROP = 0.02, 3.0, 0.05
BOOTSTRAP = 2000  # resamples of the test set


@dataclass
class Run:
    """One training of one recipe on one split, scored on its test files."""

    name: str
    f1: float
    fit: float  # seconds
    epochs: int
    train_images: int
    flops: float  # forward FLOPs per image (Conv/Dense kernels)
    predicted: np.ndarray  # (test,) class index, in the test files' order
    image_size: int
    wall: float = 0.0  # ours: the train stage's whole wall time
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.train_images * self.epochs / self.fit

    def peak_fraction(self, peak: float) -> float:
        return 3 * self.flops * self.rate / peak


# --- measuring ----------------------------------------------------------------------


def matmul_peak(n: int = 4096, repeats: int = 4) -> float:
    """FLOP/s of the best of ``repeats`` fp32 (n, n) x (n, n) matmuls, after one warm-up."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32, seed=1)
    b = tf.random.normal((n, n), dtype=tf.float32, seed=2)
    best = float("inf")
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        float(tf.matmul(a, b)[0, 0])  # eager on CPU: returns once computed
        if attempt:
            best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def forward_flops(model: Any) -> float:
    """Multiply-adds x 2 of every Conv/Dense kernel for one image at the model's input size.

    Kernels are counted at their layer's output positions (height x width): exact for
    convolutions of any stride, depthwise and separable ones, and Dense heads. Batch
    norm, activations, pooling and the input's resizing are left out (small next to them).
    """
    total = 0.0
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # a nested model: the backbone, augmentation
            total += forward_flops(layer)
            continue
        kernels = [w for w in layer.weights if w.path.split("/")[-1] in KERNELS]
        if not kernels:
            continue
        shape = layer.output.shape
        positions = float(np.prod([d for d in shape[1:-1]])) if len(shape) > 2 else 1.0
        total += 2 * positions * sum(float(np.prod(w.shape)) for w in kernels)
    return total


def f1_scores(labels: np.ndarray, predicted: np.ndarray, classes: int, positive: int) -> np.ndarray:
    """F1 of ``positive`` (2 classes) or macro F1, for each row of (resamples, n) arrays."""
    scores = []
    for c in [positive] if classes == 2 else range(classes):
        tp = ((labels == c) & (predicted == c)).sum(axis=-1)
        fp = ((labels != c) & (predicted == c)).sum(axis=-1)
        fn = ((labels == c) & (predicted != c)).sum(axis=-1)
        scores.append(np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0))
    mean: np.ndarray = np.mean(scores, axis=0)
    return mean


def bootstrap(labels: np.ndarray, predicted: dict[str, np.ndarray], classes: int, positive: int) -> dict[str, Any]:
    """95 % intervals of each F1 and of the paired difference ours - seeds, same resamples."""
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(labels), size=(BOOTSTRAP, len(labels)))
    f1 = {name: f1_scores(labels[picks], p[picks], classes, positive) for name, p in predicted.items()}
    f1["difference"] = f1["ours"] - f1["seeds"]
    return {name: np.percentile(v, [2.5, 97.5]) for name, v in f1.items()}


# --- the two recipes ----------------------------------------------------------------


def stage_env(project: Path) -> dict[str, str]:
    return {**os.environ, **telemetry.OFF, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}


def stage(project: Path, name: str, seconds: dict[str, list[float]]) -> None:
    """``imgclf <name>`` in ``project`` as a user runs it; stops the benchmark on failure."""
    done, timing = timed(
        lambda: subprocess.run(
            [str(IMGCLF), name],
            cwd=project,
            env=stage_env(project),
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
    )
    seconds.setdefault(name, []).append(timing.seconds)
    if done.returncode != 0:
        sys.exit(f"imgclf {name} failed in {project} (exit {done.returncode}):\n{(done.stderr or done.stdout)[-3000:]}")
    for line in done.stdout.splitlines() + done.stderr.splitlines():
        if "auto ->" in line or line.startswith("data:"):  # what the defaults chose for this data
            print(f"    {line.strip()}")


def new_project(folder: Path, raw: Path, settings: dict[str, Any]) -> Path:
    """A fresh project: ``raw`` hard-linked into data/raw, params.yaml as the project's,
    plus ``settings`` (section -> key -> value) when there are any."""
    if folder.exists():
        shutil.rmtree(folder)  # only ever a folder of ours under WORK
    for source in raw.rglob("*.*"):
        target = folder / "data" / "raw" / source.relative_to(raw)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    if settings:
        loaded = yaml.safe_load(text)
        for section, values in settings.items():
            loaded[section] = {**(loaded.get(section) or {}), **values}
        text = yaml.safe_dump(loaded, sort_keys=False)
    (folder / "params.yaml").write_text(text, encoding="utf-8")
    return folder


def set_param(project: Path, section: str, key: str, value: Any) -> None:
    params = project / "params.yaml"
    loaded = yaml.safe_load(params.read_text(encoding="utf-8"))
    loaded.setdefault(section, {})[key] = value
    params.write_text(yaml.safe_dump(loaded, sort_keys=False), encoding="utf-8")


def ours(project: Path, test: Examples, classes: list[str], seconds: dict[str, list[float]]) -> Run:
    """``imgclf train`` + ``evaluate`` in ``project`` (validated and split); what they recorded."""
    import keras
    from mlflow.tracking import MlflowClient

    started = time.perf_counter()
    stage(project, "train", seconds)
    wall = time.perf_counter() - started
    stage(project, "evaluate", seconds)
    run_id = json.loads((project / "models" / "run.json").read_text(encoding="utf-8"))["run_id"]
    client = MlflowClient(stage_env(project)["MLFLOW_TRACKING_URI"])
    start = client.get_run(run_id).info.start_time
    last = max(m.timestamp for m in client.get_metric_history(run_id, "loss"))
    epochs = len(read_csv(project / "reports" / "train_history.csv"))
    metrics = json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))
    size = int(json.loads((project / "models" / "classes.json").read_text(encoding="utf-8"))["image_size"])
    model = keras.saving.load_model(project / "models" / "model.keras", compile=False, safe_mode=True)
    by_path = {r["path"]: classes.index(r["predicted"]) for r in read_csv(project / "reports" / "predictions.csv")}
    raw = project / "data" / "raw"
    predicted = np.array([by_path[f.relative_to(raw).as_posix()] for f in test.files])
    return Run(
        name="ours",
        f1=float(metrics["f1"]),
        fit=(last - start) / 1000,
        epochs=epochs,
        train_images=len(read_csv(project / "data" / "augmented.csv")),
        flops=forward_flops(model),
        predicted=predicted,
        image_size=size,
        wall=wall,
        notes=[f"{model.name}, {model.count_params()} parameters"],
    )


def recipe(trainval: Examples, test: Examples, classes: list[str], epochs: int | None) -> Run:
    """train_speed.seeds on ``trainval``, scored on ``test``."""
    from imgclf.evaluation import scoring
    from imgclf.params import Model
    from imgclf.training import network

    result = seeds(trainval, test, classes, epochs)
    model, _ = network.build_model(len(classes), SEED_SIZE, Model(arch="seed_cnn"))  # for its FLOPs only
    probs = scoring.probabilities(result.outputs, len(classes))
    predicted = (probs[:, 1] >= 0.5).astype(int) if len(classes) == 2 else probs.argmax(axis=1)
    return Run(
        name="seeds",
        f1=result.f1,
        fit=result.seconds,
        epochs=result.epochs,
        train_images=result.train_images,
        flops=forward_flops(model),
        predicted=predicted,
        image_size=SEED_SIZE,
    )


# --- the benchmark ------------------------------------------------------------------


def photo_set(name: str, per_class: int, seed: int = 0) -> tuple[Path, float]:
    """The generated set's folder (made unless an identical one is there) and the seconds it took."""
    stamp = {
        "classes": photogen.PRESETS[name],
        "per_class": per_class,
        "seed": seed,
        "generator": hashlib.sha256(Path(photogen.__file__).read_bytes()).hexdigest(),
    }
    folder = WORK / "sets" / f"{name}_{per_class}"
    record = folder / "stamp.json"
    if record.exists() and json.loads(record.read_text(encoding="utf-8")) == json.loads(json.dumps(stamp)):
        return folder / "raw", 0.0
    if folder.exists():
        shutil.rmtree(folder)
    started = time.perf_counter()
    photogen.generate(folder / "raw", photogen.PRESETS[name], per_class, seed)
    record.write_text(json.dumps(stamp), encoding="utf-8")
    return folder / "raw", time.perf_counter() - started


def describe(run: Run, peak: float) -> str:
    return (
        f"{run.name:<5} F1 {run.f1:.4f}, fit {run.fit:6.1f} s, {run.epochs:2} epochs x {run.train_images} images "
        f"= {run.rate:5.0f} images/s at {run.image_size} px, {3 * run.flops / 1e9:.3f} GFLOP per training image, "
        f"{run.peak_fraction(peak):.1%} of peak"
    )


def spread(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"mean {statistics.mean(values):.4f} (min {min(values):.4f}, max {max(values):.4f}, n={len(values)})"


def bench_set(name: str, raw: Path, seeds_n: int, quick: bool, detail: bool, peak: float) -> dict[str, Any]:
    classes = sorted(p.name for p in raw.iterdir() if p.is_dir())
    positive = classes.index("dog") if len(classes) == 2 else -1
    seconds: dict[str, list[float]] = {}
    runs: list[tuple[Run, Run]] = []
    detail_runs: list[Run] = []
    for split_seed in range(seeds_n):
        settings: dict[str, dict[str, Any]] = {}
        if split_seed:
            settings["split"] = {"seed": split_seed}
        if quick:
            settings["train"] = {"epochs": 2}
        project = new_project(WORK / name / f"seed{split_seed}", raw, settings)
        print(f"\n== {name}, split seed {split_seed}: {project.relative_to(ROOT)}")
        for step in STAGES[:3]:
            stage(project, step, seconds)
        split_csv, project_raw = project / "data" / "split.csv", project / "data" / "raw"
        train, val, test = (split_examples(split_csv, project_raw, s, classes) for s in ("train", "val", "test"))
        print(f"  split: train {len(train.files)}, val {len(val.files)}, test {len(test.files)}")
        mine = ours(project, test, classes, seconds)
        print(f"  {describe(mine, peak)}; train stage {mine.wall:.1f} s in all; {'; '.join(mine.notes)}")
        trainval = Examples(train.files + val.files, train.labels + val.labels)
        started = time.perf_counter()
        base = recipe(trainval, test, classes, 2 if quick else None)
        seconds.setdefault("recipe (fit + predict)", []).append(time.perf_counter() - started)
        print(f"  {describe(base, peak)}")
        labels = np.array(test.labels)
        ci = bootstrap(labels, {"ours": mine.predicted, "seeds": base.predicted}, len(classes), positive)
        print(
            f"  95% intervals (bootstrap over the {len(labels)} test images): ours {ci['ours'][0]:.4f}-"
            f"{ci['ours'][1]:.4f}, seeds {ci['seeds'][0]:.4f}-{ci['seeds'][1]:.4f}; "
            f"ours - seeds {mine.f1 - base.f1:+.4f} ({ci['difference'][0]:+.4f} to {ci['difference'][1]:+.4f})"
        )
        runs.append((mine, base))
        if detail and split_seed == 0:
            set_param(project, "train", "image_size", DETAIL_SIZE)
            started = time.perf_counter()
            try:
                thumb = ours(project, test, classes, {})
            finally:  # the project is left as the defaults' run found it, for whoever reuses it
                set_param(project, "train", "image_size", "auto")
            seconds.setdefault(f"detail check (train + evaluate at {DETAIL_SIZE} px)", []).append(
                time.perf_counter() - started
            )
            detail_runs.append(thumb)
            print(f"  detail check: {describe(thumb, peak)}")
    return {"name": name, "classes": classes, "runs": runs, "detail": detail_runs, "seconds": seconds}


def summary(result: dict[str, Any], peak: float, quick: bool) -> None:
    name, runs = result["name"], result["runs"]
    two = len(result["classes"]) == 2
    mine, base = [r[0] for r in runs], [r[1] for r in runs]
    what = 'F1 ("dog")' if two else "macro F1"
    print(f"\n  {name} ({len(result['classes'])} classes), {what}:")
    for label, group in (("ours", mine), ("seeds", base)):
        print(
            f"    {label:<5} {what} {spread([r.f1 for r in group])}; fit s {spread([r.fit for r in group])}; "
            f"images/s {statistics.mean(r.rate for r in group):.0f}; "
            f"{statistics.mean(r.peak_fraction(peak) for r in group):.1%} of peak"
        )
    gains = [m.f1 - b.f1 for m, b in runs]
    ratios = [b.fit / m.fit for m, b in runs]
    print(f"    ours - seeds: {spread(gains)}; fit ratio seeds / ours: {spread(ratios)}")
    if two:
        f1_met, time_met = statistics.mean(gains) >= GOAL_F1_GAIN, statistics.mean(ratios) >= GOAL_SPEEDUP
        print(
            f"    goal: F1 gain >= {GOAL_F1_GAIN} ({'met' if f1_met else 'NOT met'}) and fit <= 1/{GOAL_SPEEDUP:g} "
            f"of the recipe's ({'met' if time_met else 'NOT met'}): {'met' if f1_met and time_met else 'NOT met'}"
        )
    else:
        met = statistics.mean(gains) >= 0
        print(f"    goal: macro F1 >= the recipe's: {'met' if met else 'NOT met'}")
    for thumb in result["detail"]:
        drop = mine[0].f1 - thumb.f1
        print(
            f"    detail check: the same network at {thumb.image_size} px: F1 {thumb.f1:.4f} vs {mine[0].f1:.4f} at "
            f"{mine[0].image_size} px: {drop:+.4f} lower (expected >= {DETAIL_DROP}: "
            f"{'yes' if drop >= DETAIL_DROP else 'NO'})"
        )
    if quick:
        print("    (quick run: 2 epochs on small sets, F1 means little)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sets, 2 epochs, no detail check: a smoke run")
    parser.add_argument("--seeds", type=int, default=1, help="split seeds per set (0 .. N-1)")
    parser.add_argument("--sets", default="catdog,animals10", help="comma-separated: catdog, animals10")
    parser.add_argument("--per-class", type=int, default=None, help="pictures per class (default: 1000 / 300)")
    parser.add_argument("--no-detail", action="store_true", help="skip the 28-px detail check")
    args = parser.parse_args()
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    if unknown := sorted(set(names) - set(SETS)):
        sys.exit(f"--sets: unknown {', '.join(unknown)}; choose from {', '.join(SETS)}")
    started, load_start = time.perf_counter(), os.getloadavg()
    print(
        f"photo benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average "
        f"{' '.join(f'{v:.2f}' for v in load_start)}; sets {', '.join(names)}, {args.seeds} split seed(s)"
        + (" (quick)" if args.quick else "")
    )
    parts: dict[str, float] = {}
    os.environ.update(telemetry.OFF)
    from imgclf.tfruntime import import_tensorflow

    import_tensorflow()
    size = 2048 if args.quick else 4096
    peak, timing = timed(lambda: matmul_peak(size))
    parts["matmul peak"] = timing.seconds
    others = timing.others or 0.0
    print(f"fp32 matmul peak ({size}x{size}, best of 4): {peak / 1e9:.1f} GFLOP/s (others used {others:.1f} cores)")

    results = []
    for name in names:
        per_class = args.per_class or (QUICK_SETS if args.quick else SETS)[name]
        raw, took = photo_set(name, per_class)
        parts[f"generate {name} ({per_class} per class)"] = took
        print(
            f"{name}: {per_class} pictures per class in {raw.relative_to(ROOT)}"
            + (f", made in {took:.1f} s" if took else ", reused")
        )
        detail = not args.no_detail and not args.quick and name == "catdog"
        result = bench_set(name, raw, args.seeds, args.quick, detail, peak)
        for step, values in result["seconds"].items():
            parts[f"{name}: {step}"] = sum(values)
        results.append(result)

    load_end = os.getloadavg()
    print(f"\n== summary (peak {peak / 1e9:.1f} GFLOP/s)")
    for result in results:
        summary(result, peak, args.quick)
    print("\n  time per part (s, summed over seeds):")
    for part, value in parts.items():
        print(f"    {part:<58} {value:7.1f}")
    print(
        f"  whole run {time.perf_counter() - started:.0f} s; load average start "
        f"{' '.join(f'{v:.2f}' for v in load_start)}, end {' '.join(f'{v:.2f}' for v in load_end)}"
    )


if __name__ == "__main__":
    main()
