"""The audit as a Prefect flow ``reproduce-champion``: rebuild a registered version (the
champion by default) from its own record and publish the verdict as the artifact
``reproduce-verdict``.

Wiring only: imgclf.audit.reproduce does the work (a temporary git worktree at the
version's commit, its logged diff, its data version from DVC, ``dvc repro`` up to
evaluate, the comparison, the verdict tags on the version). prefect.yaml deploys it as
``reproduce-champion/monthly``. A version not reproduced, or whose record cannot be
followed (its data or commit gone), ends the flow run Failed, after its artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from imgclf.audit import reproduce
from imgclf.errors import ImgclfError
from imgclf.orchestration import flowreports
from imgclf.params import load_params

ARTIFACT = "reproduce-verdict"


@task(name="reproduce", task_run_name="reproduce-{version}", cache_policy=NO_CACHE)
def rebuild(params_file: str, version: str) -> dict[str, Any]:
    logger = get_run_logger()
    return reproduce.reproduce(load_params(Path(params_file)), version, say=logger.info).as_json()


@flow(name="reproduce-champion")
def reproduce_champion(params_file: str = "params.yaml", version: str = "champion") -> dict[str, Any]:
    """Rebuild ``version`` (a number or an alias) and publish the verdict.

    Returns:
        The outcome (verdict, differences, registered and rebuilt hashes and F1).
    """
    paths = load_params(Path(params_file)).paths
    about = flowreports.description(ARTIFACT, paths)
    try:
        outcome = rebuild(params_file, version)
    except ImgclfError as exc:
        create_markdown_artifact(
            flowreports.unreproducible_markdown(version, str(exc)), key=ARTIFACT, description=about
        )
        raise
    create_markdown_artifact(flowreports.reproduce_markdown(outcome), key=ARTIFACT, description=about)
    if not outcome["reproduced"]:
        raise ImgclfError(f"{outcome['model']} version {outcome['version']}: {outcome['verdict']}")
    return outcome


if __name__ == "__main__":
    reproduce_champion()
