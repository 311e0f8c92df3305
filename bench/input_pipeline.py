"""Input pipeline throughput: ours (``imgclf.data.datasets.make_dataset``) vs Keras' legacy ImageDataGenerator.

What it measures (figures are printed; nothing here fails the run):

Both pipelines read the same folder of N (default 2000) generated 400x300 RGB JPEGs in
two class folders and deliver batches of 32 images of 150x150, N images an epoch. Each is
iterated over its whole data set E (default 5) times in a row, as model.fit would, with
nothing else to do per batch, so the figure is the rate at which the pipeline can feed
training. Reported: images/s over all E epochs (first included), and epoch 1 vs epochs
2..E apart, and the cores the pipeline used (its process CPU time / wall time).

* baseline: ``ImageDataGenerator(rescale=1/255).flow_from_directory(folder,
  target_size=(150, 150), batch_size=32, class_mode="binary")``, the seeds' input
  pipeline; in TF 2.21 / Keras 3 it is ``tf.keras.preprocessing.image.ImageDataGenerator``
  (= ``keras.src.legacy.preprocessing.image``; ``keras.preprocessing.image`` no longer has
  it). ``len(gen)`` batches an epoch through ``next(gen)``: Pillow decode, nearest resize
  and rescale in this thread, every epoch.
* ours: ``make_dataset(Examples(files, labels), image_size=150, batch_size=32,
  shuffle_seed=0)``: Pillow decode in parallel (tf.data map, AUTOTUNE), bilinear resize,
  in-memory cache, shuffle, batch, prefetch. Epoch 1 decodes; later epochs read the cache.

The outputs differ as the two designs do: the baseline yields float32 in [0, 1] (it
rescales), ours uint8 (the model rescales in its first layer). Goal: ours >= 3x the
baseline over all E epochs. Before timing, every file is read once so that both find it
in the page cache. Load averages (start, end) and the cores other processes used during
each pipeline's run (from /proc/stat) are printed: on 2 cores a busy neighbour halves
the figures.

Run (about 30 s on 2 cores, 40 s with --profile; generating the JPEGs adds ~15 s the first time):

    uv run --frozen python bench/input_pipeline.py [--images N] [--epochs E] [--quick] [--profile]

--quick: 256 images, 3 epochs (~10 s). --profile (automatic when the goal is missed):
per-image cost of each step on one core. JPEGs go to bench/.work/ (git-ignored), shared
with validate_speed.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from validate_speed import CLASSES, WORK, Timing, link_folder, make_jpegs, timed

from imgclf.data.datasets import Examples, make_dataset
from imgclf.tfruntime import import_tensorflow

CORES = os.cpu_count() or 1
SIZE = 150  # output side, px
BATCH = 32
GOAL = 3.0  # ours / baseline, images/s over all epochs
BUSY = 0.25  # cores used by other processes above which a figure is flagged


@dataclass(frozen=True)
class Epoch:
    images: int
    timing: Timing
    cpu: float  # CPU seconds this process used


@dataclass(frozen=True)
class Run:
    name: str
    epochs: list[Epoch]

    def rate(self, first: int = 0, last: int | None = None) -> float:
        chosen = self.epochs[first:last]
        return sum(e.images for e in chosen) / sum(e.timing.seconds for e in chosen)

    def cores(self, first: int = 0, last: int | None = None) -> float:
        chosen = self.epochs[first:last]
        return sum(e.cpu for e in chosen) / sum(e.timing.seconds for e in chosen)

    @property
    def others(self) -> float:
        """Most cores other processes used during any epoch (0 when unknown)."""
        return max((e.timing.others or 0.0) for e in self.epochs)


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def run_epochs(name: str, epochs: int, one_epoch: Callable[[], int]) -> Run:
    """Call ``one_epoch`` (which returns the images it saw) ``epochs`` times, timing each."""
    done: list[Epoch] = []
    for index in range(epochs):
        cpu = _cpu()
        images, timing = timed(one_epoch)
        done.append(Epoch(images, timing, _cpu() - cpu))
        others = "" if timing.others is None else f" [others {timing.others:.1f}]"
        print(
            f"  {name:<8} epoch {index + 1}: {images} images in {timing.seconds:6.2f} s = "
            f"{images / timing.seconds:7.0f} images/s, {done[-1].cpu / timing.seconds:.1f} cores{others}"
        )
    return Run(name, done)


# --- the two pipelines --------------------------------------------------------------


def image_data_generator() -> Any:
    """The legacy class, wherever this TensorFlow/Keras keeps it."""
    import tensorflow as tf

    try:
        return tf.keras.preprocessing.image.ImageDataGenerator
    except AttributeError:  # a Keras without the tf.keras alias
        from keras.src.legacy.preprocessing.image import ImageDataGenerator

        return ImageDataGenerator


def baseline(raw: Path, epochs: int) -> Run:
    started = time.perf_counter()
    gen = image_data_generator()(rescale=1 / 255).flow_from_directory(
        str(raw), target_size=(SIZE, SIZE), batch_size=BATCH, class_mode="binary"
    )
    print(f"  baseline: flow_from_directory listed {gen.n} files in {time.perf_counter() - started:.2f} s")
    shapes: set[tuple[tuple[int, ...], str]] = set()

    def one_epoch() -> int:
        seen = 0
        for _ in range(len(gen)):
            x, _y = next(gen)
            seen += len(x)
            shapes.add((x.shape[1:], str(x.dtype)))
        return seen

    result = run_epochs("baseline", epochs, one_epoch)
    print(f"  baseline batches: {sorted(shapes)}")
    return result


def ours(raw: Path, epochs: int) -> Run:
    files = sorted(raw.glob("*/*.jpg"))
    labels = [CLASSES.index(f.parent.name) for f in files]
    data = make_dataset(Examples(files, labels), image_size=SIZE, batch_size=BATCH, shuffle_seed=0)
    shapes: set[tuple[tuple[int, ...], str]] = set()

    def one_epoch() -> int:
        seen = 0
        for x, _y in data:
            seen += int(x.shape[0])
            shapes.add((tuple(x.shape[1:]), x.dtype.name))
        return seen

    result = run_epochs("ours", epochs, one_epoch)
    print(f"  ours batches: {sorted(shapes)}")
    return result


# --- profile ------------------------------------------------------------------------


def _per_image(call: Callable[[Path], Any], paths: list[Path]) -> float:
    """Median µs of ``call`` per file, one file at a time, on this thread."""
    seconds = []
    for path in paths:
        started = time.perf_counter()
        call(path)
        seconds.append(time.perf_counter() - started)
    return 1e6 * statistics.median(seconds)


def _decode(path: bytes) -> Any:
    """What make_dataset's map calls for each file (imgclf.data.datasets keeps its own private)."""
    from imgclf.data.imaging import load_rgb

    with open(path, "rb") as src:
        return load_rgb(src.read(), min_side=SIZE)  # DCT-scaled: 400x300 decodes at 1/2


def _pass(name: str, count: int, iterate: Callable[[], int]) -> None:
    cpu, begun = _cpu(), time.perf_counter()
    seen = iterate()
    wall, used = time.perf_counter() - begun, _cpu() - cpu
    print(f"    {name:<52} {seen / wall:6.0f} images/s, CPU {1e3 * used / seen:5.2f} ms/image, {used / wall:.1f} cores")
    if seen != count:
        print(f"    WARNING: {seen} images, {count} expected")


def profile(raw: Path, base: Run, mine: Run, sample: int = 500) -> None:
    """Where epoch 1 goes: per-image cost of each step on one core, then ours' tf.data
    pipeline built up step by step (uncached, so each pass decodes), next to the baseline."""
    import numpy as np
    import tensorflow as tf
    from keras.src.utils import image_utils

    paths = sorted(raw.glob("*/*.jpg"))
    paths = paths[:: max(1, len(paths) // sample)][:sample]  # both classes

    def resize(image: tf.Tensor) -> tf.Tensor:  # make_dataset's map, after the decode
        resized = tf.image.resize(image, (SIZE, SIZE))
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

    def load_img(path: Path) -> Any:
        img = image_utils.load_img(path, target_size=(SIZE, SIZE), interpolation="nearest")
        return image_utils.img_to_array(img) * np.float32(1 / 255)

    steps: dict[str, Callable[[Path], Any]] = {
        "baseline: load_img (decode, nearest) + float + rescale": load_img,
        "ours: read + imaging.load_rgb (decode >= 150 px, EXIF, RGB)": lambda p: _decode(bytes(p)),
    }
    print(f"  one core, in this thread, median per image over {len(paths)} files:")
    for name, call in steps.items():
        print(f"    {name:<55} {_per_image(call, paths):6.0f} µs")

    def mapped(body: Callable[[tf.Tensor], tf.Tensor], read: Callable[[Any], Any] = _decode) -> Callable[[], int]:
        def decode(path: tf.Tensor) -> tf.Tensor:
            image = tf.numpy_function(read, [path], tf.uint8, stateful=False)
            image.set_shape([None, None, 3])
            return body(image)

        names = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
        data = names.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(tf.data.AUTOTUNE)
        return lambda: sum(int(x.shape[0]) for x in data)

    def tf_decoded() -> int:
        def load(path: tf.Tensor) -> tf.Tensor:
            return resize(tf.io.decode_jpeg(tf.io.read_file(path), channels=3))

        names = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
        data = names.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(tf.data.AUTOTUNE)
        return sum(int(x.shape[0]) for x in data)

    def whole() -> int:
        data = make_dataset(Examples(paths, [0] * len(paths)), image_size=SIZE, batch_size=BATCH, shuffle_seed=0)
        return sum(int(x.shape[0]) for x, _ in data)

    def generator() -> int:
        gen = image_data_generator()(rescale=1 / 255).flow_from_dataframe(
            _frame(paths), x_col="path", y_col="label", target_size=(SIZE, SIZE), batch_size=BATCH, class_mode="binary"
        )
        return sum(len(next(gen)[0]) for _ in range(len(gen)))

    print(
        f"  one pass over the same {len(paths)} files, {CORES} cores (ours: tf.data map, AUTOTUNE parallel, uncached):"
    )
    _pass("ours: decode only (numpy_function + load_rgb)", len(paths), mapped(tf.shape))
    _pass("ours: decode + resize/round/clip/cast", len(paths), mapped(resize))
    _pass("ours: make_dataset, epoch 1 (+ cache, shuffle)", len(paths), whole)
    _pass("baseline: flow_from_dataframe, one epoch", len(paths), generator)
    print("  what-ifs, not in src (same map, other decoders):")
    _pass("Pillow full-size decode (no DCT scaling) + resize", len(paths), mapped(resize, _decode_full))
    _pass("tf.io.decode_jpeg + resize (no Python)", len(paths), tf_decoded)
    print(
        f"  cores used in the timed runs: baseline {base.cores():.1f}; ours epoch 1 {mine.cores(0, 1):.1f}, "
        f"later epochs {mine.cores(1):.1f}"
    )


def _decode_full(path: bytes) -> Any:
    """Like _decode, but at full size: what make_dataset did before it decoded at the size."""
    from imgclf.data.imaging import load_rgb

    with open(path, "rb") as src:
        return load_rgb(src.read())


def _frame(paths: list[Path]) -> Any:
    import pandas as pd

    return pd.DataFrame({"path": [str(p) for p in paths], "label": [p.parent.name for p in paths]})


# --- main ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--images", type=int, help="JPEGs, half per class (default 2000; 256 with --quick)")
    parser.add_argument("--epochs", type=int, help="epochs per pipeline (default 5; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 256 images, 3 epochs")
    parser.add_argument("--profile", action="store_true", help="per-step costs (automatic when the goal is missed)")
    args = parser.parse_args()
    count = args.images or (256 if args.quick else 2000)
    epochs = args.epochs or (3 if args.quick else 5)
    if count < BATCH or epochs < 2:
        parser.error(f"--images must be at least {BATCH} and --epochs at least 2")

    started = time.perf_counter()
    load_start = os.getloadavg()
    print(
        f"input pipeline benchmark: {CORES} cores, Python {sys.version.split()[0]}, {count} JPEGs 400x300 -> "
        f"{SIZE}x{SIZE}, batch {BATCH}, {epochs} epochs; load average {load_start[0]:.2f} (1 min)"
    )
    print("\n== data")
    store, raw = WORK / "jpeg" / "raw", WORK / f"jpeg_{count}" / "raw"
    make_jpegs(store, count)
    link_folder(store, raw, count)
    size = sum(len(p.read_bytes()) for p in raw.glob("*/*.jpg"))  # into the page cache, for both
    print(f"  read once into the page cache: {size / 2**20:.0f} MB")
    import_tensorflow()
    import keras

    print(f"  TensorFlow {sys.modules['tensorflow'].__version__}, Keras {keras.__version__}")

    print("\n== baseline: ImageDataGenerator(rescale=1/255).flow_from_directory")
    base = baseline(raw, epochs)
    print("\n== ours: imgclf.data.datasets.make_dataset")
    mine = ours(raw, epochs)

    later = f"2-{epochs}" if epochs > 2 else "2"
    rows = [
        (f"all {epochs} epochs", base.rate(), mine.rate()),
        ("epoch 1", base.rate(0, 1), mine.rate(0, 1)),
        (f"epochs {later}", base.rate(1), mine.rate(1)),
    ]
    ratio = mine.rate() / base.rate()
    missed = ratio < GOAL
    if args.profile or missed:
        print(f"\n== profile{' (the goal was missed)' if missed else ''}")
        profile(raw, base, mine)

    load_end = os.getloadavg()
    busy = max(base.others, mine.others)
    print(f"\n== summary ({time.perf_counter() - started:.0f} s)")
    print(f"  {'images/s':<16} {'baseline':>9} {'ours':>9} {'ours/baseline':>14}")
    for label, b, o in rows:
        print(f"  {label:<16} {b:9.0f} {o:9.0f} {o / b:13.1f}x")
    print(
        f"  N={count}, {epochs} epochs, 2 classes, 400x300 JPEG -> {SIZE}x{SIZE}, batch {BATCH}; "
        f"cores used: baseline {base.cores():.1f}, ours {mine.cores(0, 1):.1f} (epoch 1) / {mine.cores(1):.1f} (later)"
    )
    print(
        f"  load average (1/5/15 min): start {' '.join(f'{v:.2f}' for v in load_start)}, "
        f"end {' '.join(f'{v:.2f}' for v in load_end)}; others used up to {busy:.1f} cores"
        + (" (figures skewed: trust a run on an idle machine)" if busy > BUSY else "")
    )
    print(
        f"  goal: ours >= {GOAL:g}x the baseline over all {epochs} epochs: "
        f"{ratio:.1f}x, goal {'met' if not missed else 'NOT met'}"
        + (" (quick run: epoch 1 weighs more than in the default run)" if args.quick else "")
    )


if __name__ == "__main__":
    main()
