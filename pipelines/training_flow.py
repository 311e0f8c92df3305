"""The pipeline as a Prefect flow ``training-pipeline``: one task per dvc.yaml stage.

Wiring only. Each task reproduces its stage through DVC (imgclf.orchestration.dvcrun), so
dvc.lock stays the one record, an unchanged stage is skipped, and `dvc status` is
clean afterwards; the reports become artifacts in the Prefect UI. Run it with
`imgclf run`, or `python pipelines/training_flow.py`.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from prefect import State, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal
from prefect.states import Cancelled
from prefect.tasks import exponential_backoff

from imgclf.errors import Stopped
from imgclf.orchestration import dvcrun, flowreports, results, stopping
from imgclf.params import Params, load_params
from imgclf.tables import read_csv

REPORTED = ("validate", "evaluate", "register")  # the stages whose reports become artifacts


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry unless the stage named its failure (bad data or params will fail again) or
    was stopped by a signal."""
    failure = state.result(raise_on_failure=False)
    diagnosed = isinstance(failure, dvcrun.StageFailed) and failure.diagnosed
    return not (diagnosed or isinstance(failure, Stopped))


@task(name="data-version", task_run_name="data-version", cache_policy=NO_CACHE)
def record_data(root: str, raw: str) -> str:
    if not dvcrun.record_data(Path(root), raw):
        return "unchanged"
    get_run_logger().info("%s: new content, recorded in %s.dvc (commit it with dvc.lock)", raw, raw)
    return "new version"


@task(cache_policy=NO_CACHE, task_run_name="{stage}", retry_condition_fn=retry_transient)
def run_stage(stage: str, params_file: str, force: bool) -> bool:
    params = load_params(Path(params_file))
    ran = dvcrun.reproduce(params.root, stage, force)
    # The stage's result (counts, metrics, the gate's decision, the run's link), not just "ran".
    reports = results.read_reports(params, stage)
    get_run_logger().info("%s", results.result_line(stage, ran, reports, results.run_link(params, reports)))
    return ran


@task(cache_policy=NO_CACHE, task_run_name="publish-{stage}")
def publish(stage: str, params_file: str) -> None:
    """The stage's report as an artifact (keys: lower-case and dashes)."""
    params = load_params(Path(params_file))

    def read(key: str) -> Any:
        return json.loads(params.path(key).read_text(encoding="utf-8"))

    def about(key: str) -> str:
        return flowreports.description(key, params.paths)

    if stage == "validate":
        markdown = flowreports.validation_markdown(read("validation_report"))
        create_markdown_artifact(markdown, key="validation-summary", description=about("validation-summary"))
    elif stage == "evaluate":
        table = flowreports.metrics_table(read("metrics"))
        create_table_artifact(table, key="test-metrics", description=about("test-metrics"))
        link = results.run_link(params, {"run": read("run")})
        pairs = ((r["actual"], r["predicted"]) for r in read_csv(params.path("confusion_matrix")))
        markdown = flowreports.confusion_markdown(pairs, link)
        create_markdown_artifact(markdown, key="confusion-matrix", description=about("confusion-matrix"))
        if params.path("label_issues").exists():
            markdown = flowreports.suspects_markdown(read_csv(params.path("label_issues")))
            create_markdown_artifact(markdown, key="label-suspects", description=about("label-suspects"))
    elif stage == "register":
        markdown = flowreports.promotion_markdown(read("promotion"))
        create_markdown_artifact(markdown, key="promotion-decision", description=about("promotion-decision"))


def _failed_report(params: Params) -> bool:
    """A validation report saying failed: this run's (validate removes the old one first)."""
    try:
        return json.loads(params.path("validation_report").read_text(encoding="utf-8"))["success"] is False
    except (OSError, ValueError, KeyError, TypeError):
        return False


@flow(name="training-pipeline")
def training_pipeline(
    params_file: str = "params.yaml", force: bool = False, stages: list[str] | None = None, push: bool = False
) -> dict[str, str] | State[Any]:
    """Validate, split, augment, train, evaluate and register, each through DVC.

    Args:
        params_file: the project's params.yaml; its folder is the DVC repo.
        force: rerun every selected stage even if unchanged.
        stages: a subset of the stages, in pipeline order (default: all).
        push: after success, `dvc push` when a default remote is configured.

    Returns:
        "data" -> "new version" | "unchanged", then stage -> "ran" | "skipped" (and "push"
        when asked). A failed stage raises, so the flow ends Failed with
        its message and no later stage (registration included) runs. SIGTERM or SIGINT
        returns a Cancelled state: the flow run ends Cancelled, DVC's locks released.
    """
    try:
        return _stages(params_file, force, stages, push)
    except (Stopped, TerminationSignal, KeyboardInterrupt) as exc:  # SIGTERM, SIGINT: a stop, not a crash
        signum = exc.signum if isinstance(exc, Stopped) else getattr(exc, "signal", signal.SIGINT)
        stopping.request(signum)
        stopping.hold_later_signals()
        return Cancelled(message=f"stopped by {signal.Signals(signum).name}")


def _stages(params_file: str, force: bool, stages: list[str] | None, push: bool) -> dict[str, str]:
    params: Params = load_params(Path(params_file))
    dvcrun.check_stages(stages)
    root, cfg = str(params.root), params.orchestrate
    # retry_delay, then twice that for each next retry
    stage_task = run_stage.with_options(retries=cfg.retries, retry_delay_seconds=exponential_backoff(cfg.retry_delay))
    outcome = {"data": record_data(root, params.paths.raw)}
    for stage in dvcrun.STAGES:
        # check always runs: it costs a second and stops a params typo before DVC deletes outputs.
        if stages and stage not in stages and stage != "check":
            continue
        try:
            outcome[stage] = "ran" if stage_task(stage, params_file, force) else "skipped"
        except dvcrun.StageFailed:
            if stage == "validate" and _failed_report(params):
                publish(stage, params_file)  # the UI shows which expectations failed
            raise
        if stage in REPORTED:
            publish(stage, params_file)
    if any(outcome.get(stage) == "ran" for stage in dvcrun.STAGES):
        # Once, where DVC would say it after every stage (dvcrun quiets its hint).
        get_run_logger().info("dvc.lock updated: commit it (git add dvc.lock) to record this run's versions")
    if push:
        pushed = dvcrun.push(params.root)
        outcome["push"] = "no default remote" if pushed is None else f"{pushed} files"
    return outcome


if __name__ == "__main__":
    training_pipeline()
