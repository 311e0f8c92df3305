"""What a user sees, in a real browser: screenshots of every page imgclf leaves to other tools.

Headless Chromium from Debian's ``chromium`` package (/usr/bin/chromium), driven by
Playwright (the ``ui`` dependency group; it never downloads a browser here). On a project
where ``make run`` and a second ``dvc exp run -S train.epochs=2`` ran (two runs to compare),
or on one it prepares itself with ``--prepare``, it starts ``imgclf ui`` and a Prefect
server on free ports of 127.0.0.1, runs ``imgclf run`` against that server (every stage
skipped: a flow run with its artifacts), and opens:

  mlflow-runs      the experiment's runs list: the headline test metrics and the runs' names
  mlflow-compare   the compare view of the two newest runs: train.epochs and test_f1
  mlflow-registry  the registered-models list: ``champion`` visible
  dvc-plots        ``dvc plots show``'s dvc_plots/index.html: each plot drawn, with its title
  data-docs        reports/data_docs/index.html: at least one validation listed
  prefect-run      the flow run's page, and its artifacts

Every request that leaves 127.0.0.1 or file:// is blocked and reported; on the two static
pages (DVC plots, Data Docs), which must work offline, one such request is a failure.
One line per page: OK/FAIL, what was asserted, the screenshot. Exit 1 on any failure.

    uv sync --frozen --group ui          # once, in the checkout that runs this (installs playwright)
    uv run --frozen --group ui python bench/ui_check.py --prepare            # a fresh clone in /tmp: ~4-6 min
    uv run --frozen --group ui python bench/ui_check.py /path/to/project     # after make run + dvc exp run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgclf import telemetry, tracking
from imgclf.params import load_params

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BROWSER = "/usr/bin/chromium"
LOCAL = re.compile(r"^(file:|data:|blob:|about:|https?://(127\.0\.0\.1|localhost)(:\d+)?/)")


@dataclass
class Check:
    name: str
    shot: Path
    asserted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def expect(self, ok: bool, what: str) -> None:
        (self.asserted if ok else self.failed).append(what)

    def line(self) -> str:
        status = "FAIL" if self.failed else "OK"
        said = "; ".join([*(f"NOT {f}" for f in self.failed), *self.asserted])
        offline = f"; {len(self.blocked)} outside request(s) blocked: {self.blocked[:3]}" if self.blocked else ""
        return f"{status:4} {self.name}: {said}{offline} -> {self.shot}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(project: Path, name: str) -> str:
    """The project's own command when it has a venv, else this interpreter's."""
    own = project / ".venv" / "bin" / name
    return str(own if own.exists() else Path(sys.executable).with_name(name))


def run(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    print(f"  $ {' '.join(command)}  (in {cwd}; log {log})", flush=True)
    with log.open("ab") as out:
        done = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}; see {log}")


def prepare(folder: Path, env: dict[str, str]) -> Path:
    """A fresh clone of this repo with `make run` and a second, 2-epoch experiment done."""
    project, done = folder / "proj", folder / "proj.prepared"
    if done.exists():
        print(f"prepared project reused: {project} (delete {done} to start over)")
        return project
    shutil.rmtree(project, ignore_errors=True)
    log = folder / "prepare.log"
    run(["git", "clone", "--quiet", str(REPO), str(project)], folder, env, log)
    run(["make", "run"], project, env, log)
    run([tool(project, "dvc"), "exp", "run", "-S", "train.epochs=2"], project, with_venv(project, env), log)
    done.touch()
    return project


def with_venv(project: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the project's venv first on PATH: DVC's stage commands call `imgclf`."""
    return {**env, "PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


@contextmanager
def server(command: list[str], cwd: Path, env: dict[str, str], health: str, log: Path) -> Iterator[None]:
    """A server in its own session, answering ``health`` (up to 300 s: a first Prefect start
    migrates its database); stopped with its whole process group."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        started, deadline = time.monotonic(), time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(health, timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"{' '.join(command)} did not answer {health}; see {log}")
                time.sleep(0.5)
        print(f"  {Path(command[0]).name} {command[1]} answered in {time.monotonic() - started:.1f} s: {health}")
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue


def api(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def visible(page: Any, text: str, timeout: float = 20_000) -> bool:
    from playwright.sync_api import TimeoutError as NotShown

    try:
        page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout)
        return True
    except NotShown:
        return False


def settle(page: Any) -> None:
    """Close the UI's first-visit popups (a tour's tooltip, a "new registry UI" dialog)."""
    page.wait_for_timeout(2_000)
    got_it = page.get_by_role("button", name="Got it")
    if got_it.count() and got_it.first.is_visible():
        got_it.first.click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(500)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", nargs="?", type=Path, help="a project where make run (and a 2nd dvc exp run) ran")
    parser.add_argument("--prepare", action="store_true", help="clone this repo into OUT/proj and run the pipeline")
    parser.add_argument("--out", type=Path, default=Path("/tmp/imgclf-ui-check"), help="screenshots and logs")
    args = parser.parse_args()
    if (args.project is None) == (not args.prepare):
        parser.error("give a project folder, or --prepare")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **telemetry.OFF}
    env.pop("MLFLOW_TRACKING_URI", None)  # the project's own store
    env.pop("PREFECT_API_URL", None)
    project = prepare(out, env) if args.prepare else args.project.resolve()
    env = with_venv(project, env)
    params = load_params(project / "params.yaml")

    from mlflow import MlflowClient

    client = MlflowClient(tracking.tracking_uri(params))
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    if experiment is None:
        sys.exit(f"{project}: no {params.tracking.experiment} experiment; run make run there first")
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'", max_results=2)
    if len(runs) < 2:
        sys.exit(f"{project}: {len(runs)} finished run(s); run `dvc exp run -S train.epochs=2` there too")

    run([tool(project, "dvc"), "plots", "show"], project, env, out / "dvc.log")
    mlflow_port, prefect_port = free_port(), free_port()
    mlflow_url, prefect_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{prefect_port}"
    prefect_env = {**env, "PREFECT_HOME": str(out / "prefect-home"), "PREFECT_API_URL": f"{prefect_url}/api"}
    prefect = [tool(project, "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)]
    ui = [tool(project, "imgclf"), "ui", "--port", str(mlflow_port)]
    with (
        server(ui, project, env, f"{mlflow_url}/health", out / "mlflow.log"),
        server(prefect, project, prefect_env, f"{prefect_url}/api/health", out / "prefect.log"),
    ):
        run([tool(project, "imgclf"), "run"], project, prefect_env, out / "flow.log")
        flow_runs = api(f"{prefect_url}/api/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 1})
        flow_run = flow_runs[0]["id"]
        artifacts = api(f"{prefect_url}/api/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run]}}})
        keys = sorted({a["key"] for a in artifacts if a.get("key")})
        checks = browse(
            project,
            out,
            params,
            experiment.experiment_id,
            [r.info for r in runs],
            mlflow_url,
            prefect_url,
            flow_run,
            keys,
        )
    print()
    for check in checks:
        print(check.line())
    return 1 if any(c.failed for c in checks) else 0


def browse(
    project: Path,
    out: Path,
    params: Any,
    experiment_id: str,
    runs: list[Any],
    mlflow_url: str,
    prefect_url: str,
    flow_run: str,
    artifact_keys: list[str],
) -> list[Check]:
    from playwright.sync_api import sync_playwright

    checks: list[Check] = []
    with sync_playwright() as playwright:
        # Root (a container) needs --no-sandbox; a user's machine does not.
        flags = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=BROWSER, args=flags)

        def page_for(check: Check) -> Any:
            context = browser.new_context(viewport={"width": 2200, "height": 1000})

            def guard(route: Any) -> None:
                if LOCAL.match(route.request.url):
                    route.continue_()
                else:
                    check.blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", guard)
            return context.new_page()

        def step(name: str, body: Callable[[Any, Check], None], offline: bool = False) -> None:
            check = Check(name, out / f"{name}.png")
            page = page_for(check)
            try:
                body(page, check)
            except Exception as exc:  # noqa: BLE001 -- a page that broke its check is a FAIL line, not a crash
                check.expect(False, f"checked without error ({type(exc).__name__}: {str(exc)[:200]})")
            page.screenshot(path=str(check.shot), full_page=True)
            if offline:
                check.expect(not check.blocked, "no request left 127.0.0.1/file://")
            page.context.close()
            checks.append(check)

        def runs_list(page: Any, check: Check) -> None:
            page.goto(tracking.runs_link(mlflow_url, experiment_id))
            for key in (*tracking.HEADLINE_METRICS, "train.epochs"):  # a param the two runs differ in
                check.expect(visible(page, key), f"{key} shown")
            for info in runs:
                check.expect(visible(page, info.run_name, 5_000), f"run {info.run_name} listed")
            settle(page)
            # The GenAI view would have redirected to its Overview (traces) tab.
            runs_tab = page.url.split("?")[0].endswith("/runs") and visible(page, "matching runs", 5_000)
            check.expect(runs_tab, "on the model-training view's runs tab")

        def compare(page: Any, check: Check) -> None:
            ids = json.dumps([info.run_id for info in runs])
            page.goto(
                f"{mlflow_url}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment_id])}&{tracking.WORKFLOW}"
            )
            for text in ("train.epochs", "test_f1", runs[0].run_name):
                check.expect(visible(page, text), f"{text} shown")

        def registry(page: Any, check: Check) -> None:
            page.goto(f"{mlflow_url}/#/models?{tracking.WORKFLOW}")
            name = params.registry.model_name
            check.expect(visible(page, name), f"{name} listed")
            settle(page)
            # In the model's row itself: the "+1" menu's hidden aliases and the dialog do not count.
            row = page.get_by_role("row").filter(has_text=name)
            # The Tags cell clips all but its first tag: the champion must be that one, on screen.
            tags = row.locator("[data-testid=models-table-tag-entry]")
            first = tags.first.inner_text() if tags.count() else ""
            check.expect(bool(re.match(r"champion\W+version \d+", first)), f"champion named first in {name}'s tags")

        def plots(page: Any, check: Check) -> None:
            html = project / "dvc_plots" / "index.html"
            page.goto(html.as_uri())
            page.wait_for_timeout(3_000)  # Vega draws after load
            titles = page.evaluate(
                """() => [...document.querySelectorAll('body > div[id]')].map(d => {
                    const box = d.querySelector('canvas, svg');
                    const r = box ? box.getBoundingClientRect() : {width: 0, height: 0};
                    const text = [...d.querySelectorAll('svg text')].map(t => t.textContent).join(' ');
                    return {id: d.id, drawn: r.width > 50 && r.height > 50, text};
                })"""
            )
            check.expect(bool(titles), f"{len(titles)} plot(s) on the page")
            specs = dict(
                re.findall(r'<div id\s*=\s*"([^"]+)".*?"title":\s*\{"text":\s*"([^"]*)"', html.read_text(), re.S)
            )
            for plot in titles:
                title = specs.get(plot["id"], plot["id"])
                check.expect(plot["drawn"], f"'{title}' drawn")
                if plot["text"]:  # an svg renderer puts the title in the page; canvas paints it
                    check.expect(title in plot["text"], f"'{title}' titled")

        def data_docs(page: Any, check: Check) -> None:
            page.goto((params.path("data_docs") / "index.html").as_uri())
            page.wait_for_timeout(1_000)
            links = page.locator("a[href*='validations/']").count()
            check.expect(links > 0, f"{links} validation(s) listed")

        def prefect_run(page: Any, check: Check) -> None:
            page.goto(f"{prefect_url}/runs/flow-run/{flow_run}")
            settle(page)
            check.expect(visible(page, "training-pipeline", 30_000), "flow training-pipeline shown")
            check.expect(visible(page, "Completed", 10_000), "Completed")
            page.screenshot(path=str(out / "prefect-run-overview.png"), full_page=True)
            tab = page.get_by_role("tab", name=re.compile("Artifacts"))
            if tab.count():
                tab.first.click()
            else:
                page.get_by_text("Artifacts").first.click()
            check.expect(bool(artifact_keys), f"{len(artifact_keys)} artifact(s) in the API")
            for key in artifact_keys:
                check.expect(visible(page, key, 10_000), f"artifact {key} shown")
            check.expect(not visible(page, "No description", 2_000), "every artifact described")

        step("mlflow-runs", runs_list)
        step("mlflow-compare", compare)
        step("mlflow-registry", registry)
        step("dvc-plots", plots, offline=True)
        step("data-docs", data_docs, offline=True)
        step("prefect-run", prefect_run)
        browser.close()
    return checks


if __name__ == "__main__":
    sys.exit(main())
