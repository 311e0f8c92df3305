"""register stage: put the trained model in the MLflow Model Registry and gate it.

The model train logged (paths.run) becomes a version of ``register.model_name``,
aliased ``challenger`` and tagged with its provenance and test metrics, unless the
same model (same content hash) is already a version. A new version then faces the
gate: the ``register.min_metrics`` floors and, when there is a champion, an F1 at
least ``register.min_delta`` higher than the champion's, both models scored here on
the current test split. Writes reports/promotion.json and the model card.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgclf import tracking
from imgclf.atomic import replacing, write_json
from imgclf.errors import StageInputError
from imgclf.evaluation.scoring import flat_metrics
from imgclf.params import Params
from imgclf.registry import modelcard, registry

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from imgclf.data.datasets import Examples
    from imgclf.params import Register
    from imgclf.serving.classifier import Classifier


@dataclass(frozen=True)
class Outcome:
    version: str
    decision: str  # champion | challenger | unchanged (the same model was already registered)
    summary: str
    reasons: list[str]
    champion: dict[str, Any] | None  # version, its F1 on this test split (None if not scored), problem


@dataclass(frozen=True)
class RegisterResult:
    promotion: dict[str, Any]  # what reports/promotion.json holds


def run(params: Params) -> RegisterResult:
    import mlflow

    from imgclf.stages.evaluate import load_candidate

    saved = tracking.saved_run(params)
    if "model_uri" not in saved:
        raise StageInputError(f"{params.paths.run}: no logged model; retrain with `dvc repro -f train`")
    if not params.path("metrics").exists():
        raise StageInputError(f"{params.paths.metrics}: the model was not evaluated; run `imgclf evaluate` first")
    # The last decision's report and card go first: after a failure there is none that
    # could be mistaken for this model's (and DVC sees the stage's outputs missing).
    for key in ("promotion", "model_card"):
        params.path(key).unlink(missing_ok=True)
    candidate, test = load_candidate(params)
    scored = candidate.score(test, params.evaluate.positive_class, params.evaluate.threshold, params.train.batch_size)
    metrics = flat_metrics(scored.metrics)
    model_hash = registry.content_hash(params.path("model"))
    tags = version_tags(params, saved["run_id"], model_hash, metrics)

    tracking.use_experiment(params)
    cfg = params.registry
    models = registry.Registry(mlflow.MlflowClient(), cfg.model_name)
    with registry.decision_lock(tracking.tracking_uri(params)):
        models.ensure("Image classifier trained by imgclf. Aliases: champion (what to serve), challenger "
                      "(the newest version the gate did not promote).")  # fmt: skip
        models.reconcile()  # a decision a killed process left half-applied is finished first
        version = models.find(model_hash)
        if version is None:
            version = models.create(saved["model_uri"], saved["run_id"], tags, describe(params, tags))
            # None: a process on another machine registered the same model meanwhile.
            version = version or models.find(model_hash)
        else:
            models.drop_duplicates(model_hash)
        if version is not None and "gate_decision" not in version.tags and str(version.version) != models.champion():
            # New, or registered by a run that died before its gate.
            champion = _score_champion(models, candidate, test, params)
            outcome = _gate(models, str(version.version), metrics, champion, cfg)
        else:  # registered and gated (or promoted by hand) before
            outcome = _unchanged(models, version)

    promotion = {
        "model_name": cfg.model_name,
        "version": outcome.version,
        "decision": outcome.decision,
        "promoted": outcome.decision == "champion",
        "summary": outcome.summary,
        "reasons": outcome.reasons,
        "champion": outcome.champion,
        "metrics": metrics,
        "floors": cfg.min_metrics,
        "min_delta": cfg.min_delta,
        "content_hash": model_hash,
        "run_id": saved["run_id"],
        "data_split_md5": tags["data_split_md5"],
    }
    trained = mlflow.MlflowClient().get_run(saved["run_id"]).data.params  # what the run ran with
    card = modelcard.render(params, candidate.classes, scored.metrics, scored.confusion, saved, promotion, trained)
    with replacing(params.path("model_card")) as out:
        out.write(card)
    write_json(params.path("promotion"), promotion)
    with tracking.resume_run(params):
        mlflow.set_tags({"registered_model": cfg.model_name, "registered_version": outcome.version})
        for key in ("promotion", "model_card"):
            mlflow.log_artifact(str(params.path(key)), artifact_path="registry")
    return RegisterResult(promotion=promotion)


def version_tags(params: Params, run_id: str, model_hash: str, metrics: dict[str, float]) -> dict[str, str]:
    """Provenance (commit, data md5s, params digest, content hash) and the test metrics."""
    settings = params.model_dump(by_alias=True, exclude={"root", "paths"})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return {
        **tracking.provenance(params),
        "params_digest": digest[:16],
        "content_hash": model_hash,
        "run_id": run_id,
        "model_arch": params.model.arch,
        **{f"test_{k}": f"{v:.4f}" for k, v in metrics.items() if k != "test_images"},
        "test_images": str(int(metrics["test_images"])),
    }


def describe(params: Params, tags: dict[str, str]) -> str:
    """The version's description in the registry."""
    return (
        f"{params.model.arch} trained on data md5 {tags['data_raw_md5']} at commit {tags['git_commit'][:12]}; "
        f"test F1 {tags.get('test_f1', '?')}, accuracy {tags.get('test_accuracy', '?')} "
        f"on {tags['test_images']} images. Input: base64 image bytes in a column 'image', or uint8 arrays."
    )


def _score_champion(
    models: registry.Registry, candidate: Classifier, test: Examples, params: Params
) -> dict[str, Any] | None:
    """The champion's version and F1 on this test split, or why it could not be scored."""
    from imgclf.serving.classifier import load_pyfunc

    version = models.champion()
    if version is None:
        return None
    try:
        loaded = load_pyfunc(f"models:/{models.name}/{version}")
        champion: Classifier = loaded.classifier
    except Exception as exc:  # noqa: BLE001 - any model the registry holds; it is reported, not raised
        problem = f"the champion (version {version}) could not be loaded ({type(exc).__name__}): promote by hand"
        return {"version": version, "f1": None, "problem": problem}
    if champion.classes != candidate.classes:
        problem = (
            f"the champion (version {version}) predicts {champion.classes}, the data now has "
            f"{candidate.classes}: compare them yourself and `imgclf promote`"
        )
        return {"version": version, "f1": None, "problem": problem}
    scored = champion.score(test, params.evaluate.positive_class, params.evaluate.threshold, params.train.batch_size)
    return {"version": version, "f1": float(scored.metrics["f1"]), "problem": None}


def _unchanged(models: registry.Registry, same: ModelVersion | None) -> Outcome:
    version, current = str(same.version if same else "?"), models.champion()
    gated = same.tags.get("gate_decision") if same else None
    return Outcome(
        version=version,
        decision="unchanged",
        summary=f"already registered as version {version}; nothing registered",
        reasons=[f"the same model (content hash) is already version {version}"]
        + ([f"its gate decided: {gated}"] if gated else []),
        champion={"version": current, "f1": None, "problem": None} if current else None,
    )


def _gate(
    models: registry.Registry, version: str, metrics: dict[str, float], champion: dict[str, Any] | None, cfg: Register
) -> Outcome:
    """Run the gate on a new version; record the decision on it and, if it passes, promote it."""
    gate = registry.decide(
        metrics,
        cfg.min_metrics,
        champion["f1"] if champion else None,
        cfg.min_delta,
        champion["problem"] if champion else None,
    )
    decision = "champion" if gate.promote else "challenger"
    tags = {
        "gate_decision": decision,
        "gate_reasons": "; ".join(gate.reasons),
        "gate_champion_version": champion["version"] if champion else "none",
        "gate_champion_f1": f"{champion['f1']:.4f}" if champion and champion.get("f1") is not None else "",
    }
    # The tags and the alias move together: a kill can never leave a decision without its alias.
    models.record_gate(version, tags, gate.promote, "gate: " + "; ".join(gate.reasons))
    return Outcome(
        version=version,
        decision=decision,
        summary="promoted by the gate" if gate.promote else "not promoted; stays challenger",
        reasons=gate.reasons,
        champion=champion,
    )
