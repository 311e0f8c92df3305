"""How long the Prefect flow takes when nothing changed, as `imgclf run` and as a scheduled run.

Goal (2 cores): a run with unchanged data and params trains nothing and ends in <= 20 s,
Prefect's own start included.

  1. a fresh `git clone` of this repo into bench/.work/flow/ (once; reused later);
  2. `imgclf run` there: the whole pipeline on the demo set (restored from data/raw.dvc);
  3. `imgclf run` again, 3 times: wall time of the command, the temporary server's start included;
  4. `prefect server start` + `imgclf schedule --interval 10`: the first two scheduled runs,
     from their scheduled start to their end (the runner's child process start included).

    uv run --frozen python bench/flow_noop.py
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from imgclf import telemetry

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "flow"
BIN = Path(sys.executable).parent
GOAL = 20.0


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    print(f"  {took:6.1f} s  {done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ''}")
    return took


def scheduled_runs(project: Path, env: dict[str, str]) -> list[float]:
    """Durations of the first two scheduled runs of `imgclf schedule --interval 10`."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from imgclf.orchestration.flowrun import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    served = None
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("prefect server did not start")
                time.sleep(1)
        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            # An earlier benchmark's deployment left scheduled runs, now late, that the runner
            # would catch up first; deleting the deployment deletes them.
            for old in client.read_deployments():
                client.delete_deployment(old.id)
        since = datetime.now(UTC)
        served = subprocess.Popen(
            [str(BIN / "imgclf"), "schedule", "--interval", "10"], cwd=project,
            env={**env, "PREFECT_API_URL": url}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(2)
            with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
                runs = [
                    r
                    for r in client.read_flow_runs()
                    # this serve's runs only: the home's database keeps earlier benchmarks' runs
                    if r.state_name == "Completed" and r.end_time and r.expected_start_time >= since
                ]
            if len(runs) >= 2:
                runs.sort(key=lambda r: r.expected_start_time)
                for r in runs[:2]:
                    lag = (r.start_time - r.expected_start_time).total_seconds()  # type: ignore[operator]
                    ran = r.total_run_time.total_seconds()
                    print(f"    started {lag:.1f} s after its scheduled time; ran {ran:.1f} s")
                return [(r.end_time - r.expected_start_time).total_seconds() for r in runs[:2]]  # type: ignore[operator]
        sys.exit("fewer than two scheduled runs completed in 300 s")
    finally:
        for process in (served, server):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGINT if process is served else signal.SIGTERM)
                process.wait(timeout=60)


def main() -> None:
    project = WORK / "project"
    env = {
        **os.environ,
        "PREFECT_HOME": str(WORK / "prefect-home"),  # the user's Prefect database stays untouched
        **telemetry.OFF,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    if not project.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", str(HERE.parent), str(project)], check=True)
    imgclf = [str(BIN / "imgclf"), "run"]

    print("imgclf run, first (whole pipeline unless an earlier bench run did it):")
    timed(imgclf, project, env)
    print("imgclf run, nothing changed:")
    noop = [timed(imgclf, project, env) for _ in range(3)]
    print("scheduled runs (imgclf schedule --interval 10), nothing changed, scheduled start to end:")
    scheduled = scheduled_runs(project, env)
    for took in scheduled:
        print(f"  {took:6.1f} s")

    print("\nsummary (2 cores):")
    print(f"  imgclf run, no-op: median {statistics.median(noop):.1f} s, max {max(noop):.1f} s (goal <= {GOAL:.0f} s)")
    print(f"  scheduled no-op run: max {max(scheduled):.1f} s (goal <= {GOAL:.0f} s)")
    print(f"  goal {'met' if max(*noop, *scheduled) <= GOAL else 'MISSED'}")


if __name__ == "__main__":
    main()
