"""Everyday commands' wall time, each in fresh processes: `imgclf models`, `imgclf predict`
of one image and of a folder of 1000, `imgclf ui` until its first HTTP 200, and
`imgclf lineage champion` (text and --json).

Goals (2 cores, issue 13): models <= 3 s, predict one image <= 8 s, predict 1000 images
<= 15 s, the UI answering <= 15 s (`make ui` adds uv's check of the environment, timed
too when uv is on PATH); issue 14: lineage <= 3 s.

  1. the project: --project DIR (a project after `make run`), or the tiny project that
     bench/serve_load.py builds once in bench/.work/serve_load/project (one epoch on the
     demo images, registered as champion in its own sqlite store);
  2. one image and a folder of 1000 of its data/raw PNGs, copied to a scratch folder;
  3. each command --runs times (3), a new process each time, after one untimed warm-up
     (the page cache, bytecode); the UI on a free 127.0.0.1 port, stopped once it answers;
  4. min and median wall seconds next to the goal, and the load average before and after.

    uv run --frozen python bench/cli_speed.py [--runs 3] [--project DIR] [--only models,ui]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from imgclf import telemetry

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
BIN = Path(sys.executable).parent
FOLDER_IMAGES = 1000
GOALS = {
    "models": 3.0,
    "predict one": 8.0,
    "predict 1000": 15.0,
    "ui": 15.0,
    "uv run ui": 15.0,
    "lineage": 3.0,
    "lineage json": 3.0,
}


def timed(command: list[str], cwd: Path) -> float:
    """Seconds until ``command`` exits; its output is dropped, a failure stops the bench."""
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.monotonic() - started
    if done.returncode:
        sys.exit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}")
    return seconds


def until_answer(command: list[str], cwd: Path, port: int, limit: float = 180.0) -> float:
    """Seconds from starting a server to its first HTTP 200 on ``port``; then it is stopped."""
    started = time.monotonic()
    server = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while time.monotonic() - started < limit:
            if server.poll() is not None:
                sys.exit(f"{' '.join(command)} exited {server.returncode} before answering")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    if answer.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        sys.exit(f"{' '.join(command)}: no answer in {limit:.0f} s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def project(given: Path | None) -> Path:
    if given is not None:
        return given.resolve()
    import serve_load  # the same tiny project: built once for both benches

    root = serve_load.WORK / "serve_load" / "project"
    if not (root / "READY").exists():
        shutil.rmtree(root, ignore_errors=True)  # a half-built one (bench scratch, never user data)
        started = time.monotonic()
        serve_load.tiny_project(root)
        (root / "READY").touch()
        print(f"project: small_cnn 28x28, 1 epoch on 2000 demo images ({time.monotonic() - started:.0f} s)")
    return root


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--project", type=Path, help="a project after `make run` [default: a tiny one]")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(GOALS)}")
    args = parser.parse_args()
    telemetry.quiet()
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the project's own store
    os.environ["PATH"] = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])
    from imgclf.orchestration.flowrun import free_port

    root = project(args.project)
    pngs = sorted((root / "data" / "raw").rglob("*.png"))
    if len(pngs) < FOLDER_IMAGES:
        sys.exit(f"{root}/data/raw: {len(pngs)} PNGs, fewer than {FOLDER_IMAGES}")
    WORK.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv")
    with tempfile.TemporaryDirectory(dir=WORK, prefix="cli_speed-") as scratch:
        folder = Path(scratch) / "images"
        folder.mkdir()
        for i, png in enumerate(pngs[:FOLDER_IMAGES]):
            shutil.copyfile(png, folder / f"{i:04d}_{png.name}")
        imgclf = str(BIN / "imgclf")

        def ui(*command: str) -> float:
            port = free_port()
            return until_answer([*command, "ui", "--port", str(port)], root, port)

        commands: dict[str, Callable[[], float]] = {
            "models": lambda: timed([imgclf, "models"], root),
            "predict one": lambda: timed([imgclf, "predict", str(pngs[0])], root),
            "predict 1000": lambda: timed([imgclf, "predict", str(folder)], root),
            "ui": lambda: ui(imgclf),
            "lineage": lambda: timed([imgclf, "lineage", "champion"], root),
            "lineage json": lambda: timed([imgclf, "lineage", "champion", "--json"], root),
        }
        if uv is not None and (root / "uv.lock").exists():  # what `make ui` runs
            commands["uv run ui"] = lambda: ui(uv, "run", "--frozen", "--quiet", "imgclf")
        wanted = [w.strip() for w in args.only.split(",") if w.strip()] or list(commands)
        print(f"project {root}; {args.runs} runs each after a warm-up; load average {load()}")
        print(f"{'command':<14} {'min s':>7} {'median s':>9} {'goal s':>7}")
        for name in wanted:
            if name not in commands:
                sys.exit(f"--only: unknown {name!r}; choose from {', '.join(commands)}")
            commands[name]()  # warm-up: page cache, bytecode
            seconds = [commands[name]() for _ in range(args.runs)]
            best, median, goal = min(seconds), statistics.median(seconds), GOALS[name]
            verdict = "met" if median <= goal else "MISSED"
            print(f"{name:<14} {best:>7.2f} {median:>9.2f} {goal:>7.0f}  {verdict}  [load {load()}]", flush=True)


if __name__ == "__main__":
    main()
