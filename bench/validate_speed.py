"""Speed and memory of the validate stage, measured against the project's goals.

What it measures (figures are printed; nothing here fails the run):

1. Scan throughput of ``imgclf.stages.validate.scan`` in images/s, on
   * N generated 400x300 RGB JPEGs (photo-like, quality 90, ~30 KB each), goal >= 1500/s;
   * the 2000 demo PNGs (28x28 grayscale, ``imgclf.demo.export``), goal >= 5000/s.
   Default workers (one per core): a warm-up run fills the page cache, then the best
   and median of 3 timed runs. workers=1 is timed once, for reference.
2. Memory: scan of N/4, N/2 and N JPEGs, each in a fresh interpreter so that peak RSS
   is clean; peak RSS of the scanning process and of its pool workers, and growth per
   1000 images. Goal: flat apart from the per-row manifest metadata.
3. The whole stage (``imgclf.stages.validate.run``) once on the demo folder, in a fresh
   interpreter, split into scan, Great Expectations import, and the rest (suites,
   Data Docs, writing the manifest and report).
4. With ``--profile``, or when a speed goal is missed: where a single core spends its
   time per image (read, SHA-256, Pillow open, decode) and a cProfile of the in-process scan.

Run (about 1-2 minutes on 2 cores, most of it generating JPEGs the first time):

    uv run --frozen python bench/validate_speed.py [--jpegs N] [--quick] [--profile]

Images go to bench/.work/ (git-ignored) and are reused by later runs.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before anything imports MLflow or Great Expectations; the user's environment wins.
for _name, _value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("GX_ANALYTICS_ENABLED", "false"), ("DO_NOT_TRACK", "1")):
    os.environ.setdefault(_name, _value)

# imgclf.stages.validate imports Pillow but not numpy; numpy (for generating JPEGs) is
# imported lazily so the memory children start from what a real scan would load.
from imgclf import demo  # noqa: E402
from imgclf.imaging import Limits  # noqa: E402
from imgclf.manifest import OK, ManifestRow  # noqa: E402
from imgclf.params import Validate  # noqa: E402
from imgclf.stages import validate  # noqa: E402

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
CLASSES = ("cat", "dog")
SIZE = (400, 300)  # width, height of the generated JPEGs
LIMITS = Limits(Validate().min_side, Validate().max_side, Validate().max_pixels)  # the stage's defaults
GOAL_JPEG = 1500  # images/s
GOAL_PNG = 5000  # images/s
# Memory goal, in MB per 1000 images. A ManifestRow with its strings is ~0.6 KB; the
# bytes of one JPEG are ~30 KB and its pixels 360 KB. So keeping any per-file data
# would cost >= 30 MB per 1000 images, while the manifest costs ~1 MB per 1000 (rows
# plus the transient lists and sets that build them). The limits sit between the two.
GOAL_GROWTH_PARENT = 3.0  # the parent holds the rows
GOAL_GROWTH_WORKERS = 1.0  # a worker holds one chunk of paths and results at a time
# Below this many files scan probes in-process; read from the stage so the labels stay true.
IN_PROCESS_BELOW: int = getattr(validate, "_IN_PROCESS_BELOW", 256)


# --- data ---------------------------------------------------------------------------


def photo_jpeg(seed: int) -> bytes:
    """A 400x300 RGB JPEG (quality 90) that compresses like a photo, unique per seed.

    Pure noise would be ~100 KB and decode slower than any photo; flat colour would be a
    few KB and decode faster. A smooth gradient (sky, walls), a few soft-edged shapes
    (objects), a coarse texture (foliage, fabric) and mild sensor noise land at ~30 KB,
    like a real 400x300 photo at this quality.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    width, height = SIZE
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    low, high = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    image = Image.fromarray((low + ramp[..., None] * (high - low)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        x0, x1 = sorted(rng.uniform(-50, width + 50, 2))
        y0, y1 = sorted(rng.uniform(-50, height + 50, 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.6 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    image = image.filter(ImageFilter.BoxBlur(1))
    coarse = rng.standard_normal((height // 4, width // 4), dtype=np.float32)
    texture = np.asarray(Image.fromarray(coarse).resize(SIZE, Image.Resampling.BICUBIC))
    pixels = np.asarray(image, dtype=np.float32) + (texture * np.float32(16))[..., None]
    pixels += rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(5)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def jpeg_names(count: int) -> list[str]:
    """``cat/cat_00000.jpg`` ...: ``count`` files split evenly over the classes.

    A prefix of a larger layout, so that the smaller folders are subsets of the largest.
    """
    per_class = [count // len(CLASSES) + (i < count % len(CLASSES)) for i in range(len(CLASSES))]
    return [f"{label}/{label}_{i:05d}.jpg" for label, n in zip(CLASSES, per_class, strict=True) for i in range(n)]


def _write_photo(target: Path) -> int:
    # The seed follows from the name, so a file is the same whichever run wrote it.
    label, index = target.stem.rsplit("_", 1)
    data = photo_jpeg(CLASSES.index(label) * 1_000_000 + int(index))
    partial = target.with_name(f".{target.name}.part")  # a dot-file: scan would skip a leftover
    partial.write_bytes(data)
    partial.replace(target)  # an interrupted run leaves no truncated JPEG behind
    return len(data)


def _sync(raw: Path, names: list[str]) -> list[Path]:
    """Make ``raw`` hold exactly ``names`` (removing any other file); return the missing ones."""
    wanted = {raw / name for name in names}
    if raw.exists():
        for path in [p for p in raw.rglob("*") if p.is_file() or p.is_symlink()]:
            if path not in wanted:
                path.unlink()
    for label in CLASSES:
        (raw / label).mkdir(parents=True, exist_ok=True)
    return sorted(path for path in wanted if not path.exists())


def make_jpegs(raw: Path, count: int) -> None:
    """Generate the JPEG folder, or reuse what an earlier run left there."""
    missing = _sync(raw, jpeg_names(count))
    if not missing:
        print(f"  {raw.relative_to(BENCH)}: {count} JPEGs already there")
        return
    started = time.perf_counter()
    with ProcessPoolExecutor() as pool:  # encoding is CPU-bound: one process per core
        sizes = list(pool.map(_write_photo, missing, chunksize=32))
    print(
        f"  {raw.relative_to(BENCH)}: generated {len(missing)} JPEGs "
        f"(mean {statistics.mean(sizes) / 1024:.0f} KB) in {time.perf_counter() - started:.1f} s"
    )


def make_subset(source: Path, raw: Path, count: int) -> None:
    """The first ``count`` files of ``source`` as hard links (plain files to scan, no extra disk)."""
    for path in _sync(raw, jpeg_names(count)):
        original = source / path.relative_to(raw)
        try:
            os.link(original, path)
        except OSError:  # another file system, or links not supported
            shutil.copyfile(original, path)


def make_demo(raw: Path) -> None:
    result = demo.export(CLASSES, raw)
    print(f"  {raw.relative_to(BENCH)}: {result.written} demo PNGs written, {result.unchanged} already there")


# --- scan throughput ----------------------------------------------------------------


@dataclass(frozen=True)
class Speed:
    label: str
    files: int
    workers: int  # as passed to scan: 0 = one per core
    seconds: list[float]

    @property
    def rates(self) -> list[float]:
        return [self.files / s for s in self.seconds]

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def mode(self) -> str:
        if self.workers == 1 or self.files < IN_PROCESS_BELOW:
            return "in-process"
        return f"{self.workers or os.cpu_count()} workers"


def timed_scan(raw: Path, workers: int, expected: int) -> float:
    started = time.perf_counter()
    rows, _ = validate.scan(raw, LIMITS, workers)
    seconds = time.perf_counter() - started
    ok = sum(row.status == OK for row in rows)
    if ok != expected:  # a wrong count would make the figure meaningless; say so, do not stop
        print(f"  WARNING: {raw}: {ok} ok rows, expected {expected}")
    return seconds


def measure_speed(label: str, raw: Path, files: int, repeats: int) -> tuple[Speed, Speed]:
    # Warm-up: reads every file into the page cache and imports Pillow's plugins, so the
    # timed runs measure the scan, not the disk (CI re-scans files it just wrote, too).
    timed_scan(raw, 0, files)
    default = Speed(label, files, 0, [timed_scan(raw, 0, files) for _ in range(repeats)])
    single = Speed(label, files, 1, [timed_scan(raw, 1, files)])
    for speed in (default, single):
        print(
            f"  {label}: {speed.mode:>12}  best {speed.best:7.0f} images/s, median {speed.median:7.0f} "
            f"({', '.join(f'{s:.2f}' for s in speed.seconds)} s)"
        )
    return default, single


# --- memory (runs in fresh interpreters) --------------------------------------------


def _maxrss_mb(who: int) -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS. For RUSAGE_CHILDREN it is the peak of
    # the largest single child that has been waited for, not a sum: the pool's workers are
    # joined when scan's executor closes, so they are counted.
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(who).ru_maxrss / scale


def rows_mb(rows: list[ManifestRow]) -> float:
    """Memory the manifest rows hold: each row object and the distinct objects it points to."""
    seen: set[int] = {id(rows)}
    total = sys.getsizeof(rows)
    for row in rows:
        for obj in (row, *vars(row).values()):
            if id(obj) not in seen:
                seen.add(id(obj))
                total += sys.getsizeof(obj)
    return total / 2**20


def child_memory(raw: Path) -> dict[str, float]:
    """In a fresh interpreter: peak RSS before and after scanning ``raw``."""
    baseline = _maxrss_mb(resource.RUSAGE_SELF)  # interpreter + imgclf + Pillow
    rows, _ = validate.scan(raw, LIMITS)
    return {
        "files": len(rows),
        "baseline": baseline,
        "parent": _maxrss_mb(resource.RUSAGE_SELF),
        "workers": _maxrss_mb(resource.RUSAGE_CHILDREN),
        "rows": rows_mb(rows),
    }


def in_child(*args: str) -> dict[str, Any]:
    """Run this script with ``args`` in a fresh interpreter; its last stdout line is JSON."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


@dataclass(frozen=True)
class Memory:
    runs: list[dict[str, float]]

    def growth(self, key: str) -> float:
        """MB per 1000 images."""
        return 1000 * slope([r["files"] for r in self.runs], [r[key] for r in self.runs])

    @property
    def met(self) -> bool:
        return self.growth("parent") <= GOAL_GROWTH_PARENT and self.growth("workers") <= GOAL_GROWTH_WORKERS


def measure_memory(folders: list[Path]) -> Memory:
    runs = [in_child("--child-memory", str(raw)) for raw in folders]
    print(f"  {'files':>6} {'mode':>12} {'baseline':>9} {'parent':>8} {'workers':>8} {'rows':>6}  (peak RSS, MB)")
    for run in runs:
        mode = "in-process" if run["files"] < IN_PROCESS_BELOW else f"{os.cpu_count()} workers"
        print(
            f"  {run['files']:6.0f} {mode:>12} {run['baseline']:9.1f} {run['parent']:8.1f} "
            f"{run['workers']:8.1f} {run['rows']:6.2f}"
        )
    memory = Memory(runs)
    print(
        f"  growth per 1000 images: parent {memory.growth('parent'):+.2f} MB "
        f"(rows alone {memory.growth('rows'):+.2f} MB), workers {memory.growth('workers'):+.2f} MB"
    )
    return memory


# --- the whole stage (runs in a fresh interpreter) ----------------------------------


def write_params(folder: Path) -> Path:
    """A params.yaml whose paths all lie in ``folder``; every other setting is the default."""
    params = folder / "params.yaml"
    params.write_text(
        "paths:\n"
        "  raw: raw\n"
        "  manifest: out/manifest.csv\n"
        "  split: out/split.csv\n"
        "  validation_report: out/validation.json\n"
        "  split_report: out/split.json\n"
        "  data_docs: out/data_docs\n",
        encoding="utf-8",
    )
    return params


def child_stage(params_file: Path) -> dict[str, float]:
    """In a fresh interpreter (GX not yet imported): the stage's wall time, split in three."""
    from imgclf.errors import DataValidationError
    from imgclf.params import load_params

    started = time.perf_counter()
    params = load_params(params_file)
    # Imported up front only to time it apart; run() would import it at the same point.
    import great_expectations  # noqa: F401
    import great_expectations.expectations  # noqa: F401

    imported = time.perf_counter()
    scan_seconds: list[float] = []
    real_scan = validate.scan

    def timed(*args: Any, **kwargs: Any) -> tuple[list[ManifestRow], Any]:
        begun = time.perf_counter()
        result = real_scan(*args, **kwargs)
        scan_seconds.append(time.perf_counter() - begun)
        return result

    validate.scan = timed  # run() looks scan up in its module at call time
    success = True
    try:
        validate.run(params)
    except DataValidationError as exc:  # still a complete run; report it rather than stop
        print(f"validation failed: {exc}", file=sys.stderr)
        success = False
    finished = time.perf_counter()
    return {
        "total": finished - started,
        "gx_import": imported - started,
        "scan": sum(scan_seconds),
        "rest": finished - imported - sum(scan_seconds),
        "success": success,
    }


# --- profile ------------------------------------------------------------------------


def _steps(path: Path) -> Iterator[float]:
    """Time each step of imaging.probe on one file (mirrors probe and _inspect, in order)."""
    from PIL import Image

    clock = time.perf_counter
    t0 = clock()
    os.lstat(path)
    data = path.read_bytes()
    t1 = clock()
    hashlib.sha256(data).hexdigest()
    t2 = clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as im:
            im.getexif()
            mode = im.mode
            t3 = clock()
            if im.format in {"JPEG", "MPO"}:
                im.draft(mode, (1, 1))
            im.load()
    t4 = clock()
    yield from (t1 - t0, t2 - t1, t3 - t2, t4 - t3)


def profile(label: str, raw: Path, speed: Speed, single: Speed, sample: int = 500) -> None:
    """Where one core's time goes per image, what the pool costs, and cProfile's top functions."""
    paths = [raw / p for p in validate.list_candidates(raw, Counter())][:sample]
    totals = [0.0] * 4
    for path in paths:
        for i, seconds in enumerate(_steps(path)):
            totals[i] += seconds
    steps = dict(zip(("read", "sha256", "open+header", "decode"), totals, strict=True))
    probed = sum(steps.values())
    started = time.perf_counter()
    validate.list_candidates(raw, Counter())
    listing = time.perf_counter() - started
    per_image_single = min(single.seconds) / single.files
    workers = os.cpu_count() or 1
    pool_overhead = min(speed.seconds) - min(single.seconds) / workers
    print(f"  {label}: per image on one core, {len(paths)} files sampled (µs):")
    for name, seconds in steps.items():
        print(f"    {name:<12} {1e6 * seconds / len(paths):7.0f}  {100 * seconds / probed:3.0f}%")
    print(
        f"    whole scan in-process: {1e6 * per_image_single:.0f} µs/image, of which listing the folder "
        f"{1e6 * listing / single.files:.0f}; the rest is rows, duplicates and call overhead\n"
        f"    pool: {1e3 * min(speed.seconds):.0f} ms with {workers} workers vs. {1e3 * min(single.seconds) / workers:.0f} ms "
        f"ideal (in-process / {workers}): {1e3 * pool_overhead:+.0f} ms start-up, transfer and imbalance"
    )
    profiler = cProfile.Profile()
    profiler.runcall(validate.scan, raw, LIMITS, 1)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print(f"  cProfile of scan(workers=1), top functions by own time:\n    " + "\n    ".join(lines[start:]))


# --- main ---------------------------------------------------------------------------


def goal(value: float, target: float) -> str:
    return f"goal {target:.0f}: {'met' if value >= target else 'NOT met'}"


def section(title: str, work: Callable[[], Any]) -> Any:
    print(f"\n== {title}")
    return work()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jpegs", type=int, default=None, help="JPEGs to generate and scan (default 4000; 1024 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer JPEGs and one timed run instead of three")
    parser.add_argument("--profile", action="store_true", help="also profile the scan (automatic when a goal is missed)")
    parser.add_argument("--child-memory", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-stage", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jpegs is not None and args.jpegs < 4 * IN_PROCESS_BELOW:
        # N/4 must reach the pool too, or the memory series would compare two modes.
        parser.error(f"--jpegs must be at least {4 * IN_PROCESS_BELOW}")

    if args.child_memory:
        print(json.dumps(child_memory(args.child_memory)))
        return
    if args.child_stage:
        print(json.dumps(child_stage(args.child_stage)))
        return

    count = args.jpegs or (4 * IN_PROCESS_BELOW if args.quick else 4000)
    repeats = 1 if args.quick else 3
    started = time.perf_counter()
    print(f"validate benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {count} JPEGs")

    jpeg_raw, demo_raw = WORK / "jpeg" / "raw", WORK / "demo" / "raw"
    sizes = [count // 4, count // 2, count]
    memory_raws = [jpeg_raw if n == count else WORK / f"jpeg_{n}" / "raw" for n in sizes]

    def prepare() -> None:
        make_jpegs(jpeg_raw, count)
        for n, raw in zip(sizes, memory_raws, strict=True):
            if raw != jpeg_raw:
                make_subset(jpeg_raw, raw, n)
        make_demo(demo_raw)

    section("data", prepare)
    demo_count = sum(1 for _ in demo_raw.rglob("*.png"))
    jpeg_label, png_label = f"{SIZE[0]}x{SIZE[1]} JPEG", "28x28 PNG (demo)"
    jpeg, jpeg_single = section("scan: JPEGs", lambda: measure_speed(jpeg_label, jpeg_raw, count, repeats))
    png, png_single = section("scan: demo PNGs", lambda: measure_speed(png_label, demo_raw, demo_count, repeats))
    memory: Memory = section("memory: scan in a fresh process per folder size", lambda: measure_memory(memory_raws))
    stage: dict[str, float] = section(
        "whole validate stage on the demo folder (fresh process)",
        lambda: in_child("--child-stage", str(write_params(WORK / "demo"))),
    )
    print(
        f"  {stage['total']:.1f} s = scan {stage['scan']:.2f} s + GX import {stage['gx_import']:.1f} s "
        f"+ suites, Data Docs and writes {stage['rest']:.1f} s; suite {'passed' if stage['success'] else 'FAILED'}"
    )

    missed = jpeg.best < GOAL_JPEG or png.best < GOAL_PNG
    if args.profile or missed:
        section(
            "profile",
            lambda: (profile(jpeg_label, jpeg_raw, jpeg, jpeg_single), profile(png_label, demo_raw, png, png_single)),
        )

    def speed_line(speed: Speed, target: float | None) -> str:
        verdict = goal(speed.best, target) if target else "reference"
        return (
            f"validate scan   {speed.label:<17} N={speed.files:<5} {speed.mode:>10}  "
            f"{speed.best:6.0f} images/s (median {speed.median:.0f})  ({verdict})"
        )

    flat = "met" if memory.met else "NOT met"
    peaks = "/".join(f"{r['parent']:.0f}" for r in memory.runs)
    worker_peaks = "/".join(f"{r['workers']:.0f}" for r in memory.runs)
    print(
        f"\n== summary ({time.perf_counter() - started:.0f} s)\n"
        + "\n".join(
            (
                speed_line(jpeg, GOAL_JPEG),
                speed_line(jpeg_single, None),
                speed_line(png, GOAL_PNG),
                speed_line(png_single, None),
                f"validate memory {jpeg_label:<17} N={'/'.join(map(str, sizes))}  peak RSS parent {peaks} MB, "
                f"workers {worker_peaks} MB; per 1000 images parent {memory.growth('parent'):+.2f} MB "
                f"(rows {memory.growth('rows'):+.2f}), workers {memory.growth('workers'):+.2f} MB "
                f"(goal <= {GOAL_GROWTH_PARENT:g} / {GOAL_GROWTH_WORKERS:g}: {flat})",
                f"validate stage  {png_label:<17} N={demo_count:<5} {stage['total']:.1f} s = scan {stage['scan']:.2f} s "
                f"+ GX import {stage['gx_import']:.1f} s + suites/docs/writes {stage['rest']:.1f} s",
            )
        )
    )


if __name__ == "__main__":
    main()
