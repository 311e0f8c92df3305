"""Training speed and test F1: our default configuration vs the seeds' recipe, same split, one run.

What it measures (figures are printed; nothing here fails the run):

On the demo set (data/raw: cat/dog 28x28 grayscale PNGs) and its split (data/split.csv,
columns path,label,split; written by ``make run``), each recipe trains on the train
split and is scored on the test split (F1 of "dog", ``imgclf.evaluation.scoring.score``):

* ours: what ``imgclf train`` does with default params (``imgclf.params.Params()``):
  ``network.build_model`` (small_cnn, 28x28, online horizontal flips), the input of
  ``imgclf.data.datasets.make_dataset``, Adam with a cosine decay over all steps,
  binary_crossentropy (the train stage's own ``_compile`` and ``_rate``), class weights,
  up to 10 epochs with validation on the val split and EarlyStopping (patience from
  params, best weights restored). Not timed or run: MLflow, checkpoints, saving.
* the seeds' recipe: ``build_model`` with ``Model(arch="seed_cnn")`` at 150x150 and no
  augmentation, fed by the legacy ``ImageDataGenerator().flow_from_dataframe`` (absolute
  paths, target_size 150x150, batch 32, class_mode "binary", shuffled), Adam at its
  default rate, binary_crossentropy, 10 epochs, no validation, no callbacks. The seeds'
  ``rescale=1/255`` is the model's own Rescaling(1/255) layer: build_model's networks take
  0..255 pixels (uint8 input), and a generator's [0, 1] floats would be cast to 0 or 1.
  The test split goes through the same kind of generator, unshuffled.

Printed: wall time of ``model.fit`` (first-epoch tracing and decoding included),
training images/s (train images x epochs run / fit time), epochs run, test F1, the time
ratio, and the goal: our F1 >= the recipe's AND our fit time <= 1/3 of the recipe's. Also
load averages at start and end, the cores other processes used during each fit (from
/proc/stat) and the whole script's time. Everything is seeded (keras.utils.set_random_seed(42)
before each model); on CPU, figures still vary a little from run to run.

Run (about 3.5 min on 2 cores, nearly all of it the seeds' recipe):

    uv run --frozen python bench/train_speed.py [--quick]

--quick: every 8th train image, 2 epochs each (~25 s); its F1 means little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from validate_speed import timed

from imgclf.data.datasets import Examples, split_examples
from imgclf.data.manifest import read_manifest
from imgclf.params import Model, Params
from imgclf.tables import read_csv
from imgclf.tfruntime import import_tensorflow
from imgclf.training import autoconf

ROOT = Path(__file__).resolve().parent.parent
RAW, SPLIT = ROOT / "data" / "raw", ROOT / "data" / "split.csv"
POSITIVE = "dog"
SEED = 42
SEED_SIZE, SEED_BATCH, SEED_EPOCHS = 150, 32, 10  # the seeds' recipe
GOAL_SPEEDUP = 3.0  # the recipe's fit time / ours, at least
BUSY = 0.25  # cores used by other processes above which a figure is flagged


@dataclass(frozen=True)
class Result:
    name: str
    seconds: float  # model.fit wall time
    others: float | None  # cores other processes used during the fit
    epochs: int  # epochs run (early stopping may end ours sooner)
    train_images: int
    f1: float
    accuracy: float
    epoch_seconds: list[float]  # wall time of each epoch (ours: validation included)
    outputs: Any = None  # the model's raw test outputs, in test order (bench/photo_speed.py pairs them)

    @property
    def rate(self) -> float:
        return self.train_images * self.epochs / self.seconds


def epoch_timer() -> Any:
    """A Keras callback that records each epoch's wall time in its ``seconds`` list."""
    import keras

    class EpochTimer(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._begun = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self._begun = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.seconds.append(time.perf_counter() - self._begun)

    return EpochTimer()


def thin(examples: Examples, step: int) -> Examples:
    return Examples(examples.files[::step], examples.labels[::step])


def f1_of(labels: list[int], outputs: Any, classes: list[str]) -> tuple[float, float]:
    import numpy as np

    from imgclf.evaluation import scoring

    scored = scoring.score(np.asarray(labels), scoring.probabilities(outputs, len(classes)), classes, POSITIVE, 0.5)
    return float(scored.metrics["f1"]), float(scored.metrics["accuracy"])


def ours(train: Examples, val: Examples, test: Examples, classes: list[str], epochs: int | None) -> Result:
    """The train stage's fit with default params, minus MLflow and checkpoints."""
    import keras

    from imgclf.data.datasets import make_dataset
    from imgclf.training.phases import prepare

    # The defaults, with what auto chooses for this data (as the train stage resolves them).
    params = autoconf.resolve(Params(), autoconf.describe(read_manifest(ROOT / "data" / "manifest.csv"))).params
    cfg = params.train
    epochs = epochs or cfg.epochs
    setup = prepare(params, train, val, len(classes), epochs=epochs)
    model, train_data, val_data, weights = setup.model, setup.train_data, setup.val_data, setup.class_weight
    stop = keras.callbacks.EarlyStopping(patience=cfg.early_stopping_patience, restore_best_weights=True)
    timer = epoch_timer()
    print(
        f"  {params.model.arch} at {cfg.size}x{cfg.size}, {model.count_params()} parameters, "
        f"augment {params.augment.mode}, {cfg.lr_schedule} rate {cfg.learning_rate:g}, batch {cfg.batch_size}, "
        f"up to {epochs} epochs, class weights {'on' if weights else 'off'}"
    )
    history, timing = timed(
        lambda: model.fit(
            train_data,
            validation_data=val_data,
            epochs=epochs,
            class_weight=weights,
            callbacks=[stop, timer],
            shuffle=False,  # the dataset shuffles itself, seeded
            verbose=0,
        )
    )
    outputs = model.predict(make_dataset(test, cfg.size, cfg.batch_size), verbose=0)
    f1, accuracy = f1_of(test.labels, outputs, classes)
    run = len(history.history["loss"])
    print(f"  fit {timing.seconds:.1f} s, {run} epochs (best {stop.best_epoch + 1}: val_loss {stop.best:.4f})")
    return Result("ours", timing.seconds, timing.others, run, len(train.files), f1, accuracy, timer.seconds)


def frame(examples: Examples, classes: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame({"path": [str(f) for f in examples.files], "label": [classes[i] for i in examples.labels]})


def seeds(train: Examples, test: Examples, classes: list[str], epochs: int | None) -> Result:
    """seed_cnn at 150x150 on ImageDataGenerator batches, Adam defaults, no callbacks."""
    import keras
    import tensorflow as tf

    from imgclf.training import network

    epochs = epochs or SEED_EPOCHS
    generator = tf.keras.preprocessing.image.ImageDataGenerator()  # rescale: the model's Rescaling layer
    flow = dict(x_col="path", y_col="label", target_size=(SEED_SIZE, SEED_SIZE), batch_size=SEED_BATCH)
    keras.utils.set_random_seed(SEED)
    two = len(classes) == 2  # more classes (bench/photo_speed.py): integer labels and a softmax
    mode = "binary" if two else "sparse"
    train_flow = generator.flow_from_dataframe(frame(train, classes), class_mode=mode, seed=SEED, **flow)
    if train_flow.class_indices != {c: i for i, c in enumerate(classes)}:
        sys.exit(f"class order differs: {train_flow.class_indices} vs {classes}")
    model, _ = network.build_model(len(classes), SEED_SIZE, Model(arch="seed_cnn"))
    adam = keras.optimizers.Adam()
    loss = "binary_crossentropy" if two else "sparse_categorical_crossentropy"
    model.compile(optimizer=adam, loss=loss, metrics=["accuracy"])
    print(
        f"  seed_cnn at {SEED_SIZE}x{SEED_SIZE}, {model.count_params()} parameters, no augmentation, "
        f"Adam {float(adam.learning_rate):g}, batch {SEED_BATCH}, {epochs} epochs"
    )
    timer = epoch_timer()  # the recipe had no callbacks; this one only reads the clock
    history, timing = timed(lambda: model.fit(train_flow, epochs=epochs, callbacks=[timer], verbose=0))
    test_flow = generator.flow_from_dataframe(frame(test, classes), class_mode=None, shuffle=False, **flow)
    outputs = model.predict(test_flow, verbose=0)
    f1, accuracy = f1_of(test.labels, outputs, classes)
    run = len(history.history["loss"])
    print(f"  fit {timing.seconds:.1f} s, {run} epochs")
    return Result("seeds", timing.seconds, timing.others, run, len(train.files), f1, accuracy, timer.seconds, outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every 8th train image, 2 epochs each: a smoke run")
    args = parser.parse_args()
    started = time.perf_counter()
    load_start = os.getloadavg()
    if not SPLIT.exists() or not RAW.is_dir():
        sys.exit(f"{SPLIT.relative_to(ROOT)} or {RAW.relative_to(ROOT)}/ is missing: run `make run` first")
    classes = sorted({r["label"] for r in read_csv(SPLIT)})
    if POSITIVE not in classes or len(classes) != 2:
        sys.exit(f"expected the cat/dog demo set, found classes {classes}: run `make run` on the demo data")
    train, val, test = (split_examples(SPLIT, RAW, s, classes) for s in ("train", "val", "test"))
    epochs = 2 if args.quick else None
    if args.quick:
        train = thin(train, 8)
    print(
        f"training benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average "
        f"{load_start[0]:.2f} (1 min); demo set: train {len(train.files)}, val {len(val.files)}, "
        f"test {len(test.files)} images; classes {classes}, positive {POSITIVE!r}"
    )
    import_tensorflow()

    print("\n== ours: imgclf train's defaults")
    mine = ours(train, val, test, classes, epochs)
    print("\n== the seeds' recipe")
    base = seeds(train, test, classes, epochs)

    load_end = os.getloadavg()
    speedup = base.seconds / mine.seconds
    f1_met, time_met = mine.f1 >= base.f1, speedup >= GOAL_SPEEDUP
    print(f"\n== summary ({time.perf_counter() - started:.0f} s in all)")
    for r in (mine, base):
        busy = "" if r.others is None else f", others used {r.others:.1f} cores"
        print(
            f"  {r.name:<6} fit {r.seconds:6.1f} s, {r.epochs:2} epochs x {r.train_images} images = "
            f"{r.rate:5.0f} images/s; test F1 ({POSITIVE}) {r.f1:.4f}, accuracy {r.accuracy:.4f}{busy}"
        )
        later = f", later epochs median {statistics.median(r.epoch_seconds[1:]):.1f} s" if r.epochs > 1 else ""
        print(f"         epoch 1 (tracing, first decode) {r.epoch_seconds[0]:.1f} s{later}")
    print(
        f"  load average (1/5/15 min): start {' '.join(f'{v:.2f}' for v in load_start)}, "
        f"end {' '.join(f'{v:.2f}' for v in load_end)}"
        + (
            " (others used cores: trust a run on an idle machine)"
            if max(r.others or 0.0 for r in (mine, base)) > BUSY
            else ""
        )
    )
    print(
        f"  time: ours {mine.seconds:.1f} s vs seeds {base.seconds:.1f} s = {speedup:.1f}x faster "
        f"(goal >= {GOAL_SPEEDUP:g}x: {'met' if time_met else 'NOT met'}); "
        f"F1 {mine.f1:.4f} vs {base.f1:.4f} ({'met' if f1_met else 'NOT met'})"
    )
    print(
        f"  goal (our F1 >= the recipe's and our time <= 1/{GOAL_SPEEDUP:g}): "
        f"{'met' if f1_met and time_met else 'NOT met'}" + (" (quick run: F1 means little)" if args.quick else "")
    )


if __name__ == "__main__":
    main()
