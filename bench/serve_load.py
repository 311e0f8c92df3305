"""Load on `imgclf serve`: 8 concurrent clients of mixed good and hostile requests.

Goals (2 cores): 0 wrong statuses (good requests 200, bad ones 400, an oversize body
413), the worker's RSS grows by at most 100 MB over the run, and p99 latency of a
single good image is at most 100 ms.

  1. a tiny project in bench/.work/serve_load/project (built once, then reused): the
     project's default network (small_cnn, 28x28) trained one epoch on the demo cats and
     dogs, logged and registered as the champion of its own sqlite store; or, with
     --project DIR, the champion of that project's store;
  2. `imgclf serve` there on a free 127.0.0.1 port (loopback only), warmed up;
  3. --clients threads (8) send requests for --seconds (60), at most --max-requests in
     all, each a seeded draw from the mix below, and check each status;
  4. the worker's RSS (psutil if installed, else /proc) after the warm-up and at the end,
     its peak, and how many cores other processes used meanwhile ([others N]);
  5. one SIGTERM to imgclf serve, and how long it and its children took to go.

    uv run --frozen python bench/serve_load.py [--seconds 60] [--clients 8] [--project DIR]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from imgclf import telemetry
from imgclf.orchestration.stopping import live_descendants, running

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
BIN = Path(sys.executable).parent
NAME = "bench-serve"
GOAL_P99_MS, GOAL_RSS_MB = 100.0, 100.0
SIZE = 28  # the demo's own size, what train.image_size: auto gives it


@dataclass(frozen=True)
class Kind:
    weight: int
    status: int  # the only right answer
    body: bytes
    single: bool = False  # one good image: counts for the latency goal


@dataclass
class Tally:
    statuses: Counter[tuple[str, int | str]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, status: int | str, seconds: float) -> None:
        with self.lock:
            self.statuses[(kind, status)] += 1
            self.latencies[kind].append(seconds)


def requests_mix() -> dict[str, Kind]:
    """What clients send: good images in every accepted form, and every refusal."""
    import numpy as np
    from PIL import Image

    from imgclf.data.demo import export

    raw = WORK / "serve_load" / "demo"
    export(("cat", "dog"), raw)
    demo = Image.open(sorted((raw / "dog").glob("*.png"))[0]).convert("RGB")
    photo = demo.resize((320, 240))  # a client's photo, not the model's 28x28

    def encoded(image: Image.Image, fmt: str) -> str:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        return base64.b64encode(buffer.getvalue()).decode()

    def frame(*cells: str) -> bytes:
        return json.dumps({"dataframe_split": {"columns": ["image"], "data": [[c] for c in cells]}}).encode()

    sys.path.insert(0, str(HERE.parent / "tests"))
    from images import png_bomb  # a valid 1-bit PNG of zeros: 0.2 MB, 169 Mpx

    pixels = np.asarray(demo)
    scaled = (pixels / 255).round(3)  # a 0-1 image: truncated to black before the fix
    nan = pixels.astype(float)
    nan[3, 4, 1] = float("nan")
    return {
        "jpeg": Kind(25, 200, frame(encoded(photo, "JPEG")), single=True),
        "png": Kind(15, 200, frame(encoded(demo, "PNG")), single=True),
        "uint8 array": Kind(15, 200, json.dumps({"inputs": [pixels.tolist()]}).encode(), single=True),
        "whole floats": Kind(5, 200, json.dumps({"inputs": [pixels.astype(float).tolist()]}).encode(), single=True),
        "8 jpegs": Kind(8, 200, frame(*[encoded(photo.rotate(i * 10), "JPEG") for i in range(8)])),
        "png bomb": Kind(6, 400, frame(base64.b64encode(png_bomb(13_000, 13_000)).decode())),
        "NaN floats": Kind(5, 400, json.dumps({"inputs": [nan.tolist()]}).encode()),
        "0.5 floats": Kind(5, 400, json.dumps({"inputs": [scaled.tolist()]}).encode()),
        "65 images": Kind(5, 400, frame(*[encoded(demo, "PNG")] * 65)),
        "21 MB body": Kind(2, 413, frame(base64.b64encode(os.urandom(16 * 2**20)).decode())),
        "garbage base64": Kind(7, 400, frame("this is *not* base64!")),
    }


def tiny_project(root: Path) -> None:
    """The default network trained one epoch on 2000 demo images, registered as champion."""
    import mlflow

    from imgclf import tracking
    from imgclf.data.datasets import Examples, make_dataset
    from imgclf.data.demo import export
    from imgclf.params import load_params
    from imgclf.serving.pyfunc import log_model
    from imgclf.training import autoconf
    from imgclf.training.network import build_model

    root.mkdir(parents=True)
    (root / "params.yaml").write_text(f"register:\n  model_name: {NAME}\n", encoding="utf-8")
    params = load_params(root / "params.yaml")
    raw = root / "data" / "raw"
    export(("cat", "dog"), raw)
    files = sorted(raw.glob("*/*.png"))
    labels = [int(f.parent.name == "dog") for f in files]
    demo = autoconf.DataShape(images=2000, short_side=SIZE, colour=0.0)  # what train resolves for the demo
    model, _ = build_model(2, SIZE, autoconf.resolve(params, demo).params.model)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(make_dataset(Examples(files, labels), SIZE, 32, shuffle_seed=0), epochs=1, verbose=0)
    model_file, classes = root / "models" / "model.keras", root / "models" / "classes.json"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model.save(model_file)
    classes.write_text(json.dumps({"classes": ["cat", "dog"], "image_size": SIZE}))
    tracking.use_experiment(params)
    with mlflow.start_run() as run:
        uri = log_model(model_file, classes, params.validation.max_pixels)
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    version = client.create_model_version(NAME, uri, run.info.run_id)
    client.set_registered_model_alias(NAME, "champion", version.version)


def memory(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) in MB: psutil's RSS where it is installed, the peak from /proc (VmHWM)."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss, peak = int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024
    try:
        import psutil
    except ImportError:
        return rss, peak
    return psutil.Process(pid).memory_info().rss / 2**20, peak


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU time all cores spent busy since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def client(
    port: int, kinds: dict[str, Kind], seed: int, stop: threading.Event, budget: list[int], tally: Tally
) -> None:
    names = list(kinds)
    weights = [kinds[n].weight for n in names]
    draw = random.Random(seed)
    connection: http.client.HTTPConnection | None = None
    while not stop.is_set():
        with tally.lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        name = draw.choices(names, weights)[0]
        started = time.perf_counter()
        try:
            connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request(
                "POST", "/invocations", body=kinds[name].body, headers={"Content-Type": "application/json"}
            )
            answer = connection.getresponse()
            answer.read()
            status: int | str = answer.status
            if answer.getheader("connection", "").lower() == "close":
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as exc:
            status = type(exc).__name__
            if connection is not None:
                connection.close()
            connection = None
        tally.add(name, status, time.perf_counter() - started)


def wait_until_up(port: int, server: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"imgclf serve exited {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"imgclf serve did not answer within {seconds:.0f} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=200_000, help="a bound whatever the speed")
    parser.add_argument("--workers", type=int, default=1, help="imgclf serve --workers")
    parser.add_argument("--project", type=Path, help="serve this project's champion instead of a tiny model")
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or not 0 < args.seconds <= 3600:
        sys.exit("--clients 1-64, --seconds up to 3600")
    telemetry.quiet()
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the project's own store
    from imgclf.orchestration.flowrun import free_port

    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK, prefix="serve_load-") as scratch:
        root = args.project.resolve() if args.project else WORK / "serve_load" / "project"
        if not args.project and not (root / "READY").exists():  # built once, reused by later runs
            started = time.monotonic()
            shutil.rmtree(root, ignore_errors=True)  # a half-built one (bench scratch, never user data)
            tiny_project(root)
            (root / "READY").touch()
            print(f"model: small_cnn 28x28, 1 epoch on 2000 demo images ({time.monotonic() - started:.0f} s)")
        kinds = requests_mix()
        port = free_port()
        log = (Path(scratch) / "serve.log").open("wb")
        command = [str(BIN / "imgclf"), "serve", "--port", str(port), "--workers", str(args.workers)]
        server = subprocess.Popen(command, cwd=root, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        try:
            run(server, port, kinds, args)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def run(server: subprocess.Popen[bytes], port: int, kinds: dict[str, Kind], args: argparse.Namespace) -> None:
    started = time.monotonic()
    wait_until_up(port, server, 300)
    print(f"imgclf serve answered after {time.monotonic() - started:.0f} s")
    if args.workers > 1:  # /ping answers once the first worker is up; wait for the others
        deadline = time.monotonic() + 300
        while len(live_descendants(server.pid)) < args.workers + 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(10)
    # With several workers, the figures are the largest one's (each holds the model).
    worker = max(live_descendants(server.pid), key=lambda pid: memory(pid)[0])
    loaded = memory(worker)[0]
    warm = Tally()
    for name in kinds:  # every kind once on one connection, then single images a while
        client(port, {name: kinds[name]}, 0, threading.Event(), [3], warm)
    client(port, {k: v for k, v in kinds.items() if v.single}, 0, threading.Event(), [100], warm)
    rss_start = memory(worker)[0]

    tally, stop, budget = Tally(), threading.Event(), [args.max_requests]
    threads = [
        threading.Thread(target=client, args=(port, kinds, seed, stop, budget, tally), daemon=True)
        for seed in range(args.clients)
    ]
    serving = live_descendants(server.pid)  # uvicorn (and its workers)

    def server_cpu() -> float:
        return sum(cpu_seconds(pid) for pid in serving)

    each0 = {pid: cpu_seconds(pid) for pid in serving}
    busy0, worker0, self0, t0 = busy_seconds(), server_cpu(), sum(os.times()[:2]), time.monotonic()
    for thread in threads:
        thread.start()
    deadline = t0 + args.seconds
    while time.monotonic() < deadline and any(t.is_alive() for t in threads):
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=70)
    elapsed = time.monotonic() - t0
    clients = (sum(os.times()[:2]) - self0) / elapsed
    served = (server_cpu() - worker0) / elapsed
    each = sorted(((cpu_seconds(pid) - each0[pid]) / elapsed for pid in serving), reverse=True)
    others = (busy_seconds() - busy0) / elapsed - served - clients
    time.sleep(1)  # let the last responses' buffers go
    rss_end, peak = memory(worker)

    total = sum(tally.statuses.values())
    wrong = {key: n for key, n in tally.statuses.items() if key[1] != kinds[key[0]].status}
    print(f"\n{total} requests in {elapsed:.1f} s from {args.clients} clients: {total / elapsed:.1f} requests/s  "
          f"[cores: server {served:.2f} ({' + '.join(f'{c:.2f}' for c in each)}), clients {clients:.2f}, "
          f"others {others:.2f}]")  # fmt: skip
    print(f"{'request':<16}{'count':>7}{'status':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for name, kind in kinds.items():
        times = tally.latencies.get(name, [])
        print(f"{name:<16}{len(times):>7}{kind.status:>8}{1000 * percentile(times, 50):>9.1f}"
              f"{1000 * percentile(times, 99):>9.1f}")  # fmt: skip
    single = [t for name, kind in kinds.items() if kind.single for t in tally.latencies.get(name, [])]
    p50, p99 = 1000 * percentile(single, 50), 1000 * percentile(single, 99)
    growth = rss_end - rss_start
    print(f"\nsingle good image: p50 {p50:.1f} ms, p99 {p99:.1f} ms (n={len(single)})")
    print(f"wrong statuses: {sum(wrong.values())}" + (f"  {dict(wrong)}" if wrong else ""))
    print(f"worker RSS: {loaded:.0f} MB loaded, {rss_start:.0f} MB after warm-up, {rss_end:.0f} MB at the end "
          f"({growth:+.0f} MB), peak {peak:.0f} MB")  # fmt: skip

    children = [server.pid, *live_descendants(server.pid)]
    stopping = time.monotonic()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    while any(running(pid) for pid in children):
        time.sleep(0.05)
    print(
        f"stop: one SIGTERM, imgclf serve and {len(children) - 1} children gone in {time.monotonic() - stopping:.1f} s"
    )

    goals = [
        ("0 wrong statuses", not wrong),
        (f"RSS growth <= {GOAL_RSS_MB:.0f} MB", growth <= GOAL_RSS_MB),
        (f"p99 single image <= {GOAL_P99_MS:.0f} ms", p99 <= GOAL_P99_MS),
    ]
    print("goals: " + ", ".join(f"{text} {'met' if ok else 'MISSED'}" for text, ok in goals))
    if others > 0.25:
        print(f"note: other processes used {others:.2f} cores meanwhile; latency and rate are understated")


if __name__ == "__main__":
    main()
