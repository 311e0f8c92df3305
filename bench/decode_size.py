"""Decoding at the training size: epoch 1 of ``make_dataset`` on photo-size JPEGs, with and without DCT scaling.

What it measures (figures are printed; nothing here fails the run):

N (default 200) generated 1600x1200 RGB JPEGs (quality 90, photo-like: gradient, soft
shapes, coarse texture, sensor noise; ~350 KB each), two class folders, image_size 128:

1. one core, median per image: ``imaging.load_rgb`` at full size, and with
   ``min_side=128`` (libjpeg's DCT scaling at 1/8: 200x150), the only difference;
2. epoch 1 (decode + resize + cache + shuffle + batch 32) on all cores:
   ``data.make_dataset`` as train runs it (scaled decode), against the same tf.data
   pipeline around a full-size decode (what make_dataset did before). Each is built
   afresh (empty cache) and run R (default 3) times, alternating, so that both meet the
   same neighbours; median and spread are printed. Later epochs read the cache and do
   not decode, so only epoch 1 changes;
3. how far apart the two pipelines' 128 px images are (mean absolute difference, grey
   levels, over 64 files), and how far each is from an antialiased resize of the full
   decode (``tf.image.resize(..., antialias=True)``, a true thumbnail): the full decode's
   bilinear resize reads 4 of the ~150 pixels under each output pixel, so it aliases fine
   texture and noise; the scaled decode has averaged them first, and is the closer one.

Load averages and the cores other processes used during each run (/proc/stat) are printed:
on 2 cores a busy neighbour halves the figures.

Run (about 40 s on 2 cores; generating the JPEGs adds ~10 s the first time):

    uv run --frozen python bench/decode_size.py [--images N] [--repeats R] [--size S]

JPEGs go to bench/.work/photo_1600/ (git-ignored) and are reused.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from validate_speed import WORK, timed

from imgclf.data.datasets import Examples, make_dataset, resize_uint8
from imgclf.data.imaging import load_rgb
from imgclf.tfruntime import import_tensorflow

WIDTH, HEIGHT = 1600, 1200
BATCH = 32
CLASSES = ("cat", "dog")


def photo_jpeg(seed: int) -> bytes:
    """A 1600x1200 JPEG that compresses like a photo (validate_speed.photo_jpeg's recipe, larger)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    low, high = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    ramp = (x + y * np.float32(rng.uniform(-1, 1))) / 2
    image = Image.fromarray(np.clip(low + ramp * (high - low), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        x0, x1 = sorted(rng.uniform(-200, WIDTH + 200, 2))
        y0, y1 = sorted(rng.uniform(-200, HEIGHT + 200, 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.6 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    image = image.filter(ImageFilter.BoxBlur(2))
    coarse = rng.standard_normal((HEIGHT // 8, WIDTH // 8), dtype=np.float32)
    texture = np.asarray(Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
    pixels = np.asarray(image, dtype=np.float32) + (texture * np.float32(16))[..., None]
    pixels += rng.standard_normal((HEIGHT, WIDTH, 3), dtype=np.float32) * np.float32(3)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _write(target: Path) -> None:
    index = int(target.stem.rsplit("_", 1)[1])
    partial = target.with_name(f".{target.name}.part")
    partial.write_bytes(photo_jpeg(CLASSES.index(target.parent.name) * 1_000_000 + index))
    partial.replace(target)  # an interrupted run leaves no truncated JPEG behind


def make_photos(root: Path, count: int) -> list[Path]:
    files = [root / CLASSES[i % 2] / f"{CLASSES[i % 2]}_{i // 2:05d}.jpg" for i in range(count)]
    missing = [f for f in files if not f.exists()]
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
    if missing:
        started = time.perf_counter()
        with ProcessPoolExecutor() as pool:
            list(pool.map(_write, missing, chunksize=8))
        print(f"  generated {len(missing)} JPEGs in {time.perf_counter() - started:.1f} s")
    return files


def full_decode_dataset(examples: Examples, image_size: int, batch_size: int, shuffle_seed: int | None) -> Any:
    """make_dataset's pipeline around a full-size load_rgb: what it was before decoding at the size."""
    import tensorflow as tf

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.numpy_function(lambda p: load_rgb(Path(p.decode()).read_bytes()), [path], tf.uint8, stateful=False)
        image.set_shape([None, None, 3])
        return resize_uint8(image, image_size), label

    paths = [str(f) for f in examples.files]
    data = tf.data.Dataset.from_tensor_slices((paths, tf.constant(examples.labels, tf.int32)))
    data = data.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    if shuffle_seed is not None:
        data = data.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def per_image_ms(blobs: list[bytes], min_side: int | None) -> float:
    seconds = []
    for data in blobs:
        started = time.perf_counter()
        load_rgb(data, min_side=min_side)
        seconds.append(time.perf_counter() - started)
    return 1e3 * statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200, help="JPEGs, half per class (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="epoch-1 runs of each pipeline (default 3)")
    parser.add_argument("--size", type=int, default=128, help="image_size (default 128)")
    args = parser.parse_args()
    size, count = args.size, args.images
    load_start = os.getloadavg()
    print(
        f"decode-size benchmark: {os.cpu_count()} cores, {count} JPEGs {WIDTH}x{HEIGHT} -> {size}x{size}, "
        f"batch {BATCH}; load average {load_start[0]:.2f} (1 min)"
    )
    files = make_photos(WORK / "photo_1600" / "raw", count)
    blobs = [f.read_bytes() for f in files]  # also puts them in the page cache
    scaled = load_rgb(blobs[0], min_side=size).shape
    print(f"  {sum(map(len, blobs)) / len(blobs) / 1024:.0f} KB per JPEG; decoded at {size}: {scaled[1]}x{scaled[0]}")

    print("\n== one core, median per image (imaging.load_rgb)")
    sample = blobs[:50]
    full_ms, scaled_ms = per_image_ms(sample, None), per_image_ms(sample, size)
    print(f"  full size {full_ms:6.1f} ms, at min_side={size} {scaled_ms:6.1f} ms: {full_ms / scaled_ms:.1f}x")

    import_tensorflow()
    import numpy as np

    examples = Examples(files, [CLASSES.index(f.parent.name) for f in files])
    builds = {
        "full decode (before)": lambda: full_decode_dataset(examples, size, BATCH, 0),
        "make_dataset (scaled)": lambda: make_dataset(examples, size, BATCH, shuffle_seed=0),
    }
    print(f"\n== epoch 1 on {os.cpu_count()} cores: decode, resize, cache, shuffle, batch")
    runs: dict[str, list[tuple[float, float | None]]] = {name: [] for name in builds}
    cpu: dict[str, list[float]] = {name: [] for name in builds}  # this process's CPU ms per image
    for repeat in range(args.repeats):
        for name, build in builds.items():
            data = build()
            before_cpu = _cpu()
            seen, timing = timed(lambda d=data: sum(int(x.shape[0]) for x, _ in d))
            cpu[name].append(1e3 * (_cpu() - before_cpu) / seen)
            runs[name].append((timing.seconds, timing.others))
            others = "" if timing.others is None else f" [others {timing.others:.1f}]"
            print(
                f"  {repeat + 1}: {name:<22} {seen} images in {timing.seconds:5.2f} s, "
                f"CPU {cpu[name][-1]:5.1f} ms/image{others}"
            )

    # The same files, in order, through both: what the model sees at 128 px.
    import tensorflow as tf

    some = Examples(files[:64], [0] * 64)
    before = np.concatenate([x.numpy() for x, _ in full_decode_dataset(some, size, 64, None)])
    after = np.concatenate([x.numpy() for x, _ in make_dataset(some, size, 64)])
    truth = np.stack([tf.image.resize(load_rgb(data), (size, size), antialias=True).numpy() for data in blobs[:64]])

    load_end = os.getloadavg()
    print("\n== summary")
    medians = {name: statistics.median(s for s, _ in done) for name, done in runs.items()}
    for name, done in runs.items():
        seconds = ", ".join(f"{s:.2f}" for s, _ in done)
        busy = max((o or 0) for _, o in done)
        print(
            f"  {name:<22} epoch 1: median {medians[name]:5.2f} s = {count / medians[name]:5.0f} images/s "
            f"(runs {seconds}; others up to {busy:.1f} cores), "
            f"CPU {statistics.median(cpu[name]):.1f} ms/image"
        )
    full, fast = medians.values()
    full_cpu, fast_cpu = (statistics.median(c) for c in cpu.values())
    print(
        f"  epoch 1 speed-up: {full / fast:.1f}x wall, {full_cpu / fast_cpu:.1f}x CPU; "
        f"per image on one core: {full_ms / scaled_ms:.1f}x"
    )
    diff = np.abs(before.astype(int) - after.astype(int)).mean()
    print(f"  {size} px images, full vs scaled decode: mean absolute difference {diff:.2f} grey levels")
    print(
        f"  from an antialiased resize of the full decode: full decode {np.abs(before - truth).mean():.2f}, "
        f"scaled decode {np.abs(after - truth).mean():.2f} grey levels"
    )
    print(
        f"  load average (1/5/15 min): start {' '.join(f'{v:.2f}' for v in load_start)}, "
        f"end {' '.join(f'{v:.2f}' for v in load_end)}"
    )


if __name__ == "__main__":
    main()
