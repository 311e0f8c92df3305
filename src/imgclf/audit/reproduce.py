"""``imgclf reproduce``: rebuild a registered version from its record alone and say whether
the same model came out.

The version's lineage (imgclf.audit.lineage) gives its commit, its dirty tree's diff, its
data version and its content hash. In a temporary git worktree at that commit, with the
diff applied and the data checked out by DVC (imgclf.audit.checkout), ``dvc repro --force
evaluate`` runs the version's own stages on the version's own params, logging to the
experiment ``<tracking.experiment>-reproduce`` of the same store (the real experiment
stays clean). Then the rebuilt model is compared with the registered one: the same
content hash (training is deterministic on one kind of machine), else the test F1 on the
same test split within F1_TOLERANCE, else not reproduced.

The code that runs is the version's: the stages run this environment's ``imgclf`` and
``dvc`` (its installed libraries) with the worktree's ``src`` first on PYTHONPATH, ahead of
the project's editable install; a probe checks that ``imgclf`` imports from the worktree
before anything trains.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imgclf import provenance, telemetry, tracking
from imgclf.audit import checkout, dataversion, lineage
from imgclf.errors import LineageError
from imgclf.params import Params
from imgclf.registry import registry

IDENTICAL = "reproduced (identical weights)"
WITHIN = "reproduced (metrics within tolerance)"
NOT = "NOT reproduced"
F1_TOLERANCE = 0.005  # the rebuilt test F1 may differ this much (another CPU's float numerics)
UP_TO = "evaluate"  # the last stage rebuilt: register would add a version to the registry
DVC_HINTS = ("To track the changes with git", "Use `dvc push`")
# Run by the version's own code in the worktree: where imgclf imports from, and its paths.
PROBE = """
import json, pathlib, imgclf
from imgclf.params import load_params
params = load_params(pathlib.Path("params.yaml").resolve())
paths = {}
for key in ("raw", "model", "metrics", "split", "run"):
    try:
        paths[key] = str(params.path(key))
    except Exception:
        paths[key] = None
print(json.dumps({"package": imgclf.__file__, "paths": paths}))
"""


@dataclass(frozen=True)
class Rebuilt:
    """What the rebuild produced; ``failure`` says why it produced nothing."""

    content_hash: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    split_md5: str | None = None
    run_id: str | None = None
    params_differ: list[str] = field(default_factory=list)  # keys whose value is not the version's
    failure: str | None = None


@dataclass(frozen=True)
class Outcome:
    model: str
    version: str
    verdict: str  # IDENTICAL | WITHIN | NOT
    differences: list[str]
    registered: dict[str, Any]  # content_hash, f1, split_md5
    rebuilt: Rebuilt
    experiment: str
    seconds: float  # the rebuild's (dvc repro)
    kept: Path | None  # the worktree, when kept

    @property
    def reproduced(self) -> bool:
        return self.verdict != NOT

    @property
    def line(self) -> str:
        """The verdict line: the verdict, then what differs."""
        return self.verdict + (": " + "; ".join(self.differences) if self.differences else "")

    def as_json(self) -> dict[str, Any]:
        rebuilt = self.rebuilt
        return {
            "model": self.model,
            "version": self.version,
            "verdict": self.verdict,
            "reproduced": self.reproduced,
            "differences": self.differences,
            "registered": self.registered,
            "rebuilt": {
                "content_hash": rebuilt.content_hash,
                "f1": rebuilt.metrics.get("f1"),
                "split_md5": rebuilt.split_md5,
                "run_id": rebuilt.run_id,
                "params_differ": rebuilt.params_differ,
            },
            "experiment": self.experiment,
            "rebuild_seconds": round(self.seconds, 1),
        }


def judge(registered: dict[str, Any], rebuilt: Rebuilt) -> tuple[str, list[str]]:
    """The verdict on a rebuild, and what differs from the registered version.

    Args:
        registered: the version's content_hash, f1 (its test F1) and split_md5.
    """
    if rebuilt.failure is not None:
        return NOT, [f"the rebuild failed: {rebuilt.failure}"]
    if rebuilt.content_hash == registered["content_hash"]:
        return IDENTICAL, []
    differences = [f"content hash {str(rebuilt.content_hash)[:12]}, registered {str(registered['content_hash'])[:12]}"]
    if rebuilt.split_md5 != registered["split_md5"]:
        differences.append(f"test split md5 {rebuilt.split_md5}, registered {registered['split_md5']}")
        return NOT, differences
    f1, theirs = rebuilt.metrics.get("f1"), registered.get("f1")
    if f1 is None or theirs is None:
        return NOT, [*differences, "no test F1 to compare"]
    delta = f1 - theirs
    within = round(abs(delta), 6) <= F1_TOLERANCE
    bound = "within" if within else "beyond"
    differences.append(f"test F1 {f1:.4f}, registered {theirs:.4f} ({delta:+.4f}, {bound} ±{F1_TOLERANCE})")
    return (WITHIN if within else NOT), differences


def reproduce(params: Params, ref: str, keep: bool = False, say: Callable[[str], None] = lambda line: None) -> Outcome:
    """Rebuild the version ``ref`` (a number or an alias) and compare; tag it with the verdict.

    Args:
        say: told what happens, line by line (the stages' own output included).

    Raises:
        LineageError: the record cannot be followed (unknown version, its commit not in
            this repository, its data in neither cache nor remote, no logged diff).
    """
    found = lineage.trace(params, ref)
    preflight(found)
    code, data = found.code, found.data
    experiment = f"{params.tracking.experiment}-reproduce"
    registered = {
        "content_hash": found.tags.get("content_hash"),
        "f1": found.metrics.get("f1"),
        "split_md5": found.split_md5,
    }
    patch = _diff(params, found) if code.dirty else None
    state = f"dirty, with its logged diff ({', '.join(code.dirty_files)})" if code.dirty else "clean"
    with checkout.worktree(params.root, code.commit, keep) as project:
        say(f"reproduce: {found.model} version {found.version.version} at commit {code.commit[:12]} ({state})")
        source = "DVC's cache" if data.where == dataversion.CACHE else f"the remote {data.remote}"
        say(f"reproduce: data {data.md5} from {source}; worktree {project}")
        if patch is not None:
            checkout.apply_diff(project, patch)
        _set_experiment(project / "params.yaml", experiment)
        env = _environment(params, project)
        paths = _probe(project, env)
        checkout.restore_data(params.root, project, Path(paths["raw"]), data)
        # Made here, by this code: its artifacts go to the store's folder, not the worktree's.
        tracking.use_experiment(_with_experiment(params, experiment))
        started = time.monotonic()
        rebuilt = _rebuild(project, env, paths, say)
        seconds = time.monotonic() - started
        if rebuilt.run_id and found.run is not None:
            rebuilt = _check_params(params, rebuilt, found.run.params)
    verdict, differences = judge(registered, rebuilt)
    outcome = Outcome(
        found.model, found.version.version, verdict, differences, registered, rebuilt, experiment, seconds,
        project if keep else None,
    )  # fmt: skip
    _record(params, outcome)
    return outcome


def preflight(found: lineage.Lineage) -> None:
    """One clear line, before any checkout, for a record that cannot be rebuilt."""
    name = f"{found.model} version {found.version.version}"
    code, data = found.code, found.data
    if code.commit == "unknown":
        raise LineageError(f"{name}: no git commit recorded; it was not trained from a git repository")
    if not code.in_repo:
        raise LineageError(
            f"{name}: its commit {code.commit} is not in this repository (`git fetch` it; a rewritten history loses it)"
        )
    if code.dirty and code.diff is None:
        raise LineageError(f"{name}: trained from a dirty tree and its run logged no diff: that code is lost")
    if found.tags.get("content_hash") is None:
        raise LineageError(f"{name}: no content_hash tag to compare a rebuild with")
    if not data.available:
        where = f"the remote {data.remote}" if data.remote else "a remote (none is configured)"
        raise LineageError(f"{name}: its data version {data.md5} is in neither DVC's cache nor {where}")


def _diff(params: Params, found: lineage.Lineage) -> bytes:
    import mlflow

    assert found.run is not None and found.code.diff is not None  # preflight: dirty with a diff, so a run
    tracking.connect(params)
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=found.run.run_id, artifact_path=found.code.diff, dst_path=folder
        )
        return Path(path).read_bytes()


def _set_experiment(params_file: Path, experiment: str) -> None:
    """The worktree's params.yaml logging to ``experiment``: its one change to the version's params."""
    settings = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    settings["tracking"] = {**(settings.get("tracking") or {}), "experiment": experiment}
    params_file.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")


def _with_experiment(params: Params, experiment: str) -> Params:
    return params.model_copy(update={"tracking": params.tracking.model_copy(update={"experiment": experiment})})


def _environment(params: Params, project: Path) -> dict[str, str]:
    """The stages' environment: this environment's scripts first on PATH, the worktree's
    code first on PYTHONPATH, the workspace's MLflow store."""
    from imgclf.orchestration.dvcrun import scripts_first

    env = {**telemetry.OFF, **os.environ}
    env["PATH"] = scripts_first()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project / "src"), os.environ.get("PYTHONPATH")]))
    env["MLFLOW_TRACKING_URI"] = tracking.tracking_uri(params)  # the worktree's mlruns/ would vanish with it
    return env


def _probe(project: Path, env: dict[str, str]) -> dict[str, str]:
    """The version's own code reads its params: where imgclf imports from, and its paths."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    said = done.stderr.strip().splitlines()
    if done.returncode != 0:
        raise LineageError(f"the version's code cannot read its params: {said[-1] if said else done.returncode}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(found["package"]).resolve().is_relative_to(project.resolve()):
        raise LineageError(f"imgclf imports from {found['package']}, not from the version's checkout {project}")
    return {k: v for k, v in found["paths"].items() if v is not None}


def _rebuild(project: Path, env: dict[str, str], paths: dict[str, str], say: Callable[[str], None]) -> Rebuilt:
    """``dvc repro --force`` up to UP_TO in the worktree; what it produced."""
    dvc = str(Path(sys.executable).with_name("dvc"))
    tail: deque[str] = deque(maxlen=30)
    with subprocess.Popen(
        [dvc, "repro", "--force", UP_TO], cwd=project, env=env, text=True, errors="replace",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        hints = False
        for line in process.stdout:
            # DVC's closing hints (git add dvc.lock, dvc push) are about the throwaway worktree.
            hints = hints or line.startswith(DVC_HINTS)
            if not hints:
                say(line.rstrip("\n"))
            tail.append(line.strip())
    if process.returncode != 0:
        errors = [line.removeprefix("error: ") for line in tail if line.startswith("error: ")]
        said = [line for line in tail if line]
        return Rebuilt(failure=(errors or said or [f"dvc repro exited {process.returncode}"])[-1])
    model = Path(paths["model"])
    metrics = json.loads(Path(paths["metrics"]).read_text(encoding="utf-8"))
    run_file = Path(paths.get("run", ""))
    run_id = json.loads(run_file.read_text(encoding="utf-8")).get("run_id") if run_file.is_file() else None
    return Rebuilt(
        content_hash=provenance.content_hash(model),
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        split_md5=provenance.file_md5(Path(paths["split"])),
        run_id=run_id,
    )


def _check_params(params: Params, rebuilt: Rebuilt, theirs: dict[str, str]) -> Rebuilt:
    """The rebuild's logged params against the version's run's: only tracking.experiment may differ."""
    from dataclasses import replace

    from imgclf.audit import store

    assert rebuilt.run_id is not None
    ran = store.run(tracking.tracking_uri(params), rebuilt.run_id)
    if ran is None:
        return rebuilt
    differ = [k for k in lineage.params_differ(ran.params, theirs) if k != "tracking.experiment"]
    return replace(rebuilt, params_differ=differ)


def _record(params: Params, outcome: Outcome) -> None:
    """The verdict as tags on the version (and on the rebuild's run)."""
    import mlflow

    tracking.connect(params)
    client = mlflow.MlflowClient()
    at = registry.now()
    verdict = outcome.line[: registry.TAG_MAX]
    tags = {lineage.REPRODUCED_AT: at, lineage.REPRODUCE_VERDICT: verdict}
    if outcome.rebuilt.run_id:
        tags[lineage.REPRODUCE_RUN] = outcome.rebuilt.run_id
        client.set_tag(outcome.rebuilt.run_id, "reproduces", f"{outcome.model}/{outcome.version}")
        client.set_tag(outcome.rebuilt.run_id, lineage.REPRODUCE_VERDICT, verdict)
    for key, value in tags.items():
        client.set_model_version_tag(outcome.model, outcome.version, key, value)
