"""Speed and memory of the validate stage, measured against the project's goals.

What it measures (figures are printed; nothing here fails the run):

1. Scan throughput of ``imgclf.data.scan.scan`` in images/s, on
   * N generated 400x300 RGB JPEGs (photo-like, quality 90, ~33 KB each), goal >= 1500/s;
   * the 2000 demo PNGs (28x28 grayscale, ``imgclf.data.demo.export``), goal >= 5000/s.
   "warm": in this process, default workers (one per core), best and median of 3 runs
   after a warm-up run that fills the page cache; workers=1 once, for reference.
   "fresh": 3 runs, each in a new interpreter, as ``imgclf validate`` runs it: the pool's
   workers then also pay for loading Pillow's plugins.
2. Memory: a fresh interpreter scans N/4, N/2 and N JPEGs; peak RSS of that process and
   of its pool workers, and their growth per 1000 images. Goal: flat, apart from the
   per-row manifest metadata.
3. The whole stage (``imgclf validate``) once on the demo folder, in a fresh
   interpreter, split into scan, Great Expectations import, and the rest (suites,
   Data Docs, manifest and report).
4. Near-duplicate grouping (``nearduplicates.near_pairs`` and ``components``) of 100 000
   random 64-bit hashes and their mirrored hashes at validate.near_duplicate_distance,
   goal <= 10 s; the scans above hash every image and group at that distance too.
5. With ``--profile``, or when a speed goal is missed: per-image cost of each step on one
   core (read, SHA-256, Pillow open, decode, thumbnail and pHash), CPU used by the parent and the workers, and
   cProfile's top functions of the in-process scan.

Other processes skew every figure on a 2-core machine, so the CPU they used during each
timed run is measured (from /proc/stat) and printed.

Run (about 30 s on 2 cores, 40 s with --profile; generating the JPEGs adds ~30 s the first time):

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

# Before anything imports MLflow or Great Expectations; the user's environment wins.
from imgclf import telemetry

telemetry.quiet()

# imgclf.stages.validate imports Pillow but not numpy; numpy (for generating JPEGs) is
# imported lazily, so that the memory children load only what a real scan loads.
from imgclf.data import demo, nearduplicates  # noqa: E402
from imgclf.data import scan as scanning  # noqa: E402
from imgclf.data.imaging import Limits, probe  # noqa: E402
from imgclf.data.looks import look  # noqa: E402
from imgclf.data.manifest import OK, ManifestRow  # noqa: E402
from imgclf.params import Validate  # noqa: E402

T = TypeVar("T")

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
CLASSES = ("cat", "dog")
SIZE = (400, 300)  # width, height of the generated JPEGs
LIMITS = Limits(Validate().min_side, Validate().max_side, Validate().max_pixels)  # the stage's defaults
DISTANCE = Validate().near_duplicate_distance  # near-duplicate grouping, as the stage does by default
GOAL_GROUPING = 10.0  # seconds for 100 000 hashes
GROUPED = 100_000  # random hashes grouped
CORES = os.cpu_count() or 1
GOAL_JPEG = 1500  # images/s
GOAL_PNG = 5000  # images/s
# Memory goal, in MB per 1000 images. A ManifestRow with its strings is ~0.4 KB; the
# bytes of one JPEG are ~33 KB and its pixels 360 KB. Keeping any per-file data would
# cost >= 30 MB per 1000 images, the manifest ~1 MB (rows, plus the lists and sets that
# build them). The limits sit well between the two.
GOAL_GROWTH_PARENT = 3.0  # the parent holds the rows
GOAL_GROWTH_WORKERS = 1.0  # a worker holds one chunk of paths and results at a time
BUSY = 0.25  # cores used by other processes above which a timing is flagged
# Below this many files scan probes in-process; read from the scan core so the labels stay true.
IN_PROCESS_BELOW: int = scanning._IN_PROCESS_BELOW


# --- data ---------------------------------------------------------------------------


def photo_jpeg(seed: int) -> bytes:
    """A 400x300 RGB JPEG (quality 90) that compresses like a photo, unique per seed.

    Pure noise would be ~100 KB and decode slower than any photo; flat colour would be a
    few KB and decode faster. A smooth gradient (sky, walls), a few soft-edged shapes
    (objects), a coarse texture (foliage, fabric) and mild sensor noise land at ~33 KB,
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

    A prefix of any larger layout, so that the smaller folders are subsets of the largest.
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


def _missing(raw: Path, names: list[str]) -> list[Path]:
    for label in CLASSES:
        (raw / label).mkdir(parents=True, exist_ok=True)
    return [path for path in (raw / name for name in names) if not path.exists()]


def make_jpegs(store: Path, count: int) -> None:
    """Generate the first ``count`` JPEGs into ``store``, unless an earlier run already did.

    The store only grows: a --quick run after a full one generates nothing, and vice versa
    only the missing files.
    """
    missing = _missing(store, jpeg_names(count))
    if not missing:
        print(f"  {store.relative_to(BENCH)}: {count} JPEGs already there")
        return
    started = time.perf_counter()
    with ProcessPoolExecutor() as pool:  # encoding is CPU-bound: one process per core
        sizes = list(pool.map(_write_photo, missing, chunksize=32))
    print(
        f"  {store.relative_to(BENCH)}: generated {len(missing)} JPEGs "
        f"(mean {statistics.mean(sizes) / 1024:.0f} KB) in {time.perf_counter() - started:.1f} s"
    )


def link_folder(store: Path, raw: Path, count: int) -> None:
    """Make ``raw`` hold exactly the first ``count`` JPEGs of ``store``.

    Hard links: plain files to scan (no symlinks for scan to resolve), no extra disk.
    """
    names = jpeg_names(count)
    wanted = {raw / name for name in names}
    if raw.exists():  # left by a run with another count
        for path in [p for p in raw.rglob("*") if p.is_file() or p.is_symlink()]:
            if path not in wanted:
                path.unlink()
    for path in _missing(raw, names):
        original = store / path.relative_to(raw)
        try:
            os.link(original, path)
        except OSError:  # another file system, or no hard links there
            shutil.copyfile(original, path)
    print(f"  {raw.relative_to(BENCH)}: {count} JPEGs")


def make_demo(raw: Path) -> int:
    result = demo.export(CLASSES, raw)
    print(f"  {raw.relative_to(BENCH)}: {result.written} demo PNGs written, {result.unchanged} already there")
    return result.written + result.unchanged


# --- measuring ----------------------------------------------------------------------


def _busy_ticks() -> int | None:
    """CPU time (clock ticks) all processes used since boot, stolen time included; None off Linux."""
    try:
        with Path("/proc/stat").open() as stat:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    return user + nice + system + irq + softirq + steal


def _own_cpu() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class Timing:
    """One timed call: wall time, and the cores that other processes kept busy meanwhile."""

    seconds: float
    others: float | None  # None where /proc/stat is missing


def timed(call: Callable[[], T]) -> tuple[T, Timing]:
    """Call ``call``; its wall time, and the cores other processes used meanwhile.

    /proc/stat counts in ticks of 10 ms, so for runs of ~0.1 s "others" is good to ~0.1 core.
    """
    ticks, own, started = _busy_ticks(), _own_cpu(), time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    after = _busy_ticks()
    others = None
    if ticks is not None and after is not None:
        # Our pool workers are reaped when scan returns, so _own_cpu covers them too.
        busy = (after - ticks) / os.sysconf("SC_CLK_TCK")
        others = max(busy - (_own_cpu() - own), 0.0) / seconds
    return result, Timing(seconds, others)


def _peak_rss_mb() -> float:
    """Peak RSS of this process in MB.

    On Linux, VmHWM rather than ru_maxrss: the kernel carries ru_maxrss over an exec, so a
    child started by this (larger) benchmark process would report the benchmark's RSS.
    """
    try:
        with Path("/proc/self/status").open() as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _maxrss_mb(resource.RUSAGE_SELF)


def _maxrss_mb(who: int) -> float:
    # KiB on Linux, bytes on macOS. For RUSAGE_CHILDREN it is the peak of the largest single
    # child waited for, not a sum: scan's pool workers are joined when it returns.
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(who).ru_maxrss / scale


def rows_mb(rows: list[ManifestRow]) -> float:
    """Memory the manifest rows hold: each row and the distinct objects it points to."""
    seen: set[int] = {id(rows)}
    total = sys.getsizeof(rows)
    for row in rows:
        for obj in (row, *vars(row).values()):
            if id(obj) not in seen:
                seen.add(id(obj))
                total += sys.getsizeof(obj)
    return total / 2**20


def child_scan(raw: Path) -> dict[str, Any]:
    """In a fresh interpreter, as ``imgclf validate`` would: one timed scan, and peak RSS."""
    baseline = _peak_rss_mb()  # interpreter + imgclf + Pillow
    (rows, _), timing = timed(lambda: scanning.scan(raw, LIMITS, distance=DISTANCE))
    return {
        "files": len(rows),
        "seconds": timing.seconds,
        "others": timing.others,
        "baseline": baseline,
        "parent": _peak_rss_mb(),
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


# --- scan throughput ----------------------------------------------------------------


@dataclass(frozen=True)
class Speed:
    label: str  # what was scanned
    kind: str  # "warm", "fresh" or "warm, workers=1"
    files: int
    mode: str  # "2 workers" or "in-process"
    runs: list[Timing] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [self.files / run.seconds for run in self.runs]

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def busiest(self) -> float:
        """Most cores other processes used during any run (0 when unknown)."""
        return max((run.others or 0.0) for run in self.runs)

    def show(self) -> None:
        runs = ", ".join(
            f"{run.seconds:.2f} s" + ("" if run.others is None else f" [others {run.others:.1f}]") for run in self.runs
        )
        print(f"  {self.kind:<16} {self.mode:>10}  best {self.best:6.0f} images/s, median {self.median:6.0f}  ({runs})")


def mode(files: int, workers: int) -> str:
    return "in-process" if workers == 1 or files < IN_PROCESS_BELOW else f"{workers or CORES} workers"


def scan_timed(raw: Path, workers: int) -> tuple[list[ManifestRow], Timing]:
    (rows, _), timing = timed(lambda: scanning.scan(raw, LIMITS, workers, DISTANCE))
    return rows, timing


def measure_speed(label: str, raw: Path, files: int, repeats: int) -> tuple[Speed, Speed, Speed]:
    """Warm (default workers), warm with workers=1, and fresh-process scans of ``raw``."""
    # Warm-up: reads every file into the page cache, so that the runs time the scan and
    # not the disk (CI, too, scans files it has just written or restored).
    rows, _ = scan_timed(raw, 0)
    reasons = Counter(row.reason for row in rows if row.status != OK)
    excluded = f", {sum(reasons.values())} excluded ({', '.join(f'{n} {r}' for r, n in reasons.items())})"
    print(f"  {len(rows)} files: {len(rows) - sum(reasons.values())} ok{excluded if reasons else ''}")
    if len(rows) != files:  # the figure would be per the wrong count; say so, do not stop
        print(f"  WARNING: {len(rows)} files scanned, {files} expected")

    warm = Speed(label, "warm", files, mode(files, 0), [scan_timed(raw, 0)[1] for _ in range(repeats)])
    single = Speed(label, "warm, workers=1", files, mode(files, 1), [scan_timed(raw, 1)[1]])
    fresh_runs = [in_child("--child-scan", str(raw)) for _ in range(repeats)]
    fresh = Speed(label, "fresh", files, mode(files, 0), [Timing(r["seconds"], r["others"]) for r in fresh_runs])
    for speed in (warm, single, fresh):
        speed.show()
    return warm, single, fresh


# --- memory -------------------------------------------------------------------------


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


@dataclass(frozen=True)
class Memory:
    runs: list[dict[str, Any]]

    def growth(self, key: str) -> float:
        """MB per 1000 images."""
        return 1000 * slope([r["files"] for r in self.runs], [r[key] for r in self.runs])

    @property
    def met(self) -> bool:
        return self.growth("parent") <= GOAL_GROWTH_PARENT and self.growth("workers") <= GOAL_GROWTH_WORKERS


def measure_memory(folders: list[Path]) -> Memory:
    memory = Memory([in_child("--child-scan", str(raw)) for raw in folders])
    print(f"  {'files':>6} {'mode':>10} {'baseline':>9} {'parent':>7} {'workers':>8} {'rows':>5}  (peak RSS, MB)")
    for run in memory.runs:
        print(
            f"  {run['files']:6} {mode(run['files'], 0):>10} {run['baseline']:9.1f} {run['parent']:7.1f} "
            f"{run['workers']:8.1f} {run['rows']:5.2f}"
        )
    print(
        f"  growth per 1000 images: parent {memory.growth('parent'):+.2f} MB "
        f"(rows alone {memory.growth('rows'):+.2f} MB), workers {memory.growth('workers'):+.2f} MB"
    )
    return memory


# --- the whole stage ----------------------------------------------------------------


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


def child_stage(params_file: Path) -> dict[str, Any]:
    """In a fresh interpreter (GX not yet imported): `imgclf validate`'s wall time, split in three."""
    from imgclf.cli import app

    started = time.perf_counter()
    # Imported here only to time it apart; the stage would import it right after the scan.
    import great_expectations
    import great_expectations.expectations  # noqa: F401

    imported = time.perf_counter()
    scan_seconds: list[float] = []
    real_scan = scanning.scan

    def timed_scan(*args: Any, **kwargs: Any) -> tuple[list[ManifestRow], Counter[str]]:
        begun = time.perf_counter()
        result = real_scan(*args, **kwargs)
        scan_seconds.append(time.perf_counter() - begun)
        return result

    # The command imports its stage when it runs, and the stage binds scan then.
    scanning.scan = timed_scan
    code = app(["--params", str(params_file), "validate"], prog_name="imgclf", standalone_mode=False)
    finished = time.perf_counter()
    return {
        "total": finished - started,
        "gx_import": imported - started,
        "scan": sum(scan_seconds),
        "rest": finished - imported - sum(scan_seconds),
        "success": not code,  # a failed validation is still a whole run: reported, not stopped
    }


# --- profile ------------------------------------------------------------------------


def _steps(path: Path) -> Iterator[float]:
    """Seconds of each step of imaging.probe on one file (mirrors probe and inspect_bytes)."""
    from PIL import Image, ImageOps

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
            t3 = clock()
            if im.format in {"JPEG", "MPO"}:
                im.draft(im.mode, (64, 64))
            im.load()
            t4 = clock()
            look(ImageOps.exif_transpose(im))
    t5 = clock()
    yield from (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)


def _pool_cpu(raw: Path) -> tuple[float, float, float]:
    """Wall, parent CPU and workers' CPU seconds of one scan with default workers."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    scanning.scan(raw, LIMITS, distance=DISTANCE)
    wall = time.perf_counter() - started
    me2, kids2 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    parent = me2.ru_utime + me2.ru_stime - me.ru_utime - me.ru_stime
    return wall, parent, kids2.ru_utime + kids2.ru_stime - kids.ru_utime - kids.ru_stime


def _pillow_init_ms() -> float:
    """What a fresh process pays to load Pillow's common plugins on its first Image.open."""
    code = (
        "import time; from PIL import Image; t = time.perf_counter(); Image.preinit(); print(time.perf_counter() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return 1000 * float(done.stdout)


def profile(raw: Path, warm: Speed, single: Speed, sample: int = 500) -> None:
    """Where one core's time goes per image, how the pool uses the cores, and cProfile's top."""
    paths = [raw / p for p in scanning.list_candidates(raw, Counter())][:sample]
    root = raw.resolve()
    totals = [0.0] * 6
    for path in paths:  # the steps, then the real probe, file by file: both see the same CPU state
        for i, seconds in enumerate(_steps(path)):
            totals[i] += seconds
        begun = time.perf_counter()
        probe(path, root, LIMITS, look)
        totals[5] += time.perf_counter() - begun
    steps = dict(zip(("read", "sha256", "open+header", "decode", "look+pHash"), totals[:5], strict=True))
    probed = sum(steps.values())
    print(f"  {warm.label}: one core, per image ({len(paths)} files sampled):")
    for name, seconds in steps.items():
        print(f"    {name:<12} {1e6 * seconds / len(paths):5.0f} µs  {100 * seconds / probed:3.0f}%")
    per_image = min(run.seconds for run in single.runs) / single.files
    print(
        f"    imaging.probe {1e6 * totals[5] / len(paths):.0f} µs; whole in-process scan {1e6 * per_image:.0f} µs "
        "(adds listing, rows, groups)"
    )
    wall, parent, workers = _pool_cpu(raw)
    print(
        f"    pool scan: {1e3 * wall:.0f} ms wall; CPU: parent {1e3 * parent:.0f} ms, workers {1e3 * workers:.0f} ms "
        f"= {workers / (wall * CORES):.0%} of {CORES} cores (in-process alone: {1e3 * per_image * warm.files:.0f} ms)"
    )
    profiler = cProfile.Profile()
    profiler.runcall(scanning.scan, raw, LIMITS, 1, DISTANCE)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(10)
    lines = [line.replace(str(Path(sys.prefix)), "<venv>") for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print("    cProfile of scan(workers=1), top 10 by own time:\n      " + "\n      ".join(lines[start:]))


# --- near-duplicate grouping -------------------------------------------------------


def child_grouping(count: int, distance: int) -> dict[str, Any]:
    """In a fresh interpreter: group ``count`` random hashes (and mirrored hashes), timed."""
    import numpy as np

    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**64, size=count, dtype=np.uint64)
    mirrored = rng.integers(0, 2**64, size=count, dtype=np.uint64)
    started = time.perf_counter()
    pairs = nearduplicates.near_pairs(hashes, mirrored, distance)
    found = time.perf_counter()
    groups = nearduplicates.components(count, pairs)
    done = time.perf_counter()
    chunks, radius = nearduplicates.plan(distance, count, 2 * count)
    return {
        "pairs_s": found - started,
        "components_s": done - found,
        "pairs": len(pairs),
        "groups": int(np.sum(np.bincount(groups) > 1)),
        "peak_mb": _peak_rss_mb(),
        "plan": f"{len(chunks)} chunks, radius {radius}",
    }


def measure_grouping() -> list[tuple[int, dict[str, Any]]]:
    """The default distance, and wider ones for reference (each in a fresh process)."""
    results = []
    for distance in sorted({DISTANCE or 0, 6, 8}):
        run = in_child("--child-grouping", str(distance))
        results.append((distance, run))
        print(
            f"  distance {distance}: {run['pairs_s'] + run['components_s']:.2f} s "
            f"(pairs {run['pairs_s']:.2f} s, {run['plan']}; components {run['components_s']:.2f} s), "
            f"{run['pairs']} pairs, {run['groups']} groups, peak RSS {run['peak_mb']:.0f} MB"
        )
    return results


# --- main ---------------------------------------------------------------------------


def verdict(speed: Speed, target: float) -> str:
    met = "met" if speed.best >= target else "NOT met"
    return f"goal {target:.0f}: {met}" + (f"; others used {speed.busiest:.1f} cores" if speed.busiest > BUSY else "")


def grouping_verdict(distance: int, seconds: float) -> str:
    if distance != DISTANCE:
        return "reference"
    return f"goal <= {GOAL_GROUPING:g} s: {'met' if seconds <= GOAL_GROUPING else 'NOT met'}"


def speed_line(speed: Speed, target: float | None) -> str:
    return (
        f"validate scan   {speed.label:<11} N={speed.files:<5} {speed.kind:<15} {speed.mode:>10} "
        f"{speed.best:6.0f} images/s (median {speed.median:5.0f})  "
        f"({verdict(speed, target) if target else 'reference'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jpegs", type=int, help="JPEGs to generate and scan (default 4000; 1024 with --quick)")
    parser.add_argument("--quick", action="store_true", help="1024 JPEGs unless --jpegs, one run of each kind")
    parser.add_argument("--profile", action="store_true", help="also profile (automatic when a goal is missed)")
    parser.add_argument("--child-scan", type=Path, help=argparse.SUPPRESS)  # internal: fresh-process runs
    parser.add_argument("--child-stage", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-grouping", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_grouping is not None:
        print(json.dumps(child_grouping(GROUPED, args.child_grouping)))
        return
    if args.child_scan:
        print(json.dumps(child_scan(args.child_scan)))
        return
    if args.child_stage:
        print(json.dumps(child_stage(args.child_stage)))
        return
    if args.jpegs is not None and args.jpegs < 4 * IN_PROCESS_BELOW:
        # N/4 must reach the pool too, or the memory series would compare two modes.
        parser.error(f"--jpegs must be at least {4 * IN_PROCESS_BELOW}")

    count = args.jpegs or (4 * IN_PROCESS_BELOW if args.quick else 4000)
    repeats = 1 if args.quick else 3
    started = time.perf_counter()
    print(f"validate benchmark: {CORES} cores, Python {sys.version.split()[0]}, {count} JPEGs")

    print("\n== data")
    # bench/.work/jpeg/raw holds every JPEG generated so far; each measured folder
    # bench/.work/jpeg_<n>/raw links the first n of them, so that it holds exactly n.
    store, demo_raw = WORK / "jpeg" / "raw", WORK / "demo" / "raw"
    sizes = [count // 4, count // 2, count]
    memory_raws = [WORK / f"jpeg_{n}" / "raw" for n in sizes]
    jpeg_raw = memory_raws[-1]
    make_jpegs(store, count)
    for n, raw in zip(sizes, memory_raws, strict=True):
        link_folder(store, raw, n)
    demo_count = make_demo(demo_raw)

    jpeg_label, png_label = f"{SIZE[0]}x{SIZE[1]} JPEG", "28x28 PNG"
    print(f"\n== scan: {jpeg_label}")
    jpeg = measure_speed(jpeg_label, jpeg_raw, count, repeats)
    print(f"\n== scan: {png_label} (demo)")
    png = measure_speed(png_label, demo_raw, demo_count, repeats)

    print("\n== memory: one fresh process per folder size")
    memory = measure_memory(memory_raws)

    print("\n== whole validate stage on the demo folder (fresh process)")
    stage = in_child("--child-stage", str(write_params(WORK / "demo")))
    print(
        f"  {stage['total']:.1f} s = scan {stage['scan']:.2f} s + GX import {stage['gx_import']:.1f} s "
        f"+ suites, Data Docs and writes {stage['rest']:.1f} s; suite {'passed' if stage['success'] else 'FAILED'}"
    )

    print(f"\n== near-duplicate grouping: {GROUPED} random hashes (fresh process each)")
    grouping = measure_grouping()

    missed = min(s.best for s in (jpeg[0], jpeg[2])) < GOAL_JPEG or min(s.best for s in (png[0], png[2])) < GOAL_PNG
    if args.profile or missed:
        print(f"\n== profile{' (a speed goal was missed)' if missed else ''}")
        print(f"  a fresh worker loads Pillow's plugins on its first image: {_pillow_init_ms():.0f} ms")
        profile(jpeg_raw, jpeg[0], jpeg[1])
        profile(demo_raw, png[0], png[1])

    peaks = "/".join(f"{r['parent']:.0f}" for r in memory.runs)
    worker_peaks = "/".join(f"{r['workers']:.0f}" for r in memory.runs)
    summary = [
        *(speed_line(s, GOAL_JPEG if s.kind != "warm, workers=1" else None) for s in jpeg),
        *(speed_line(s, GOAL_PNG if s.kind != "warm, workers=1" else None) for s in png),
        f"validate memory {jpeg_label:<11} N={'/'.join(map(str, sizes))}: peak RSS parent {peaks} MB, "
        f"workers {worker_peaks} MB; per 1000 images parent {memory.growth('parent'):+.2f} MB "
        f"(rows {memory.growth('rows'):+.2f}), workers {memory.growth('workers'):+.2f} MB "
        f"(goal <= {GOAL_GROWTH_PARENT:g} / {GOAL_GROWTH_WORKERS:g}: {'met' if memory.met else 'NOT met'})",
        f"validate stage  {png_label:<11} N={demo_count:<5} {stage['total']:.1f} s = scan {stage['scan']:.2f} s "
        f"+ GX import {stage['gx_import']:.1f} s + suites/docs/writes {stage['rest']:.1f} s",
        *(
            f"near-duplicate grouping N={GROUPED} distance {d}: {r['pairs_s'] + r['components_s']:.2f} s "
            f"({grouping_verdict(d, r['pairs_s'] + r['components_s'])})"
            for d, r in grouping
        ),
    ]
    print(f"\n== summary ({time.perf_counter() - started:.0f} s)\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
