"""register stage: put the trained model in the MLflow Model Registry and gate it.

The model train logged (found by tracking.saved_run) becomes a version of ``register.model_name``,
aliased ``challenger`` and tagged with its provenance and test metrics, unless the
same model (same content hash) is already a version. A new version then faces the
gate: the ``register.min_metrics`` floors and, when there is a champion, an F1 at
least ``register.min_delta`` higher than the champion's, both models scored here on
the current test split. Writes reports/promotion.json and the model card (this store's
record of the decision), then paths.registered (which model is registered: DVC's output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgclf import tracking
from imgclf.atomic import replacing, write_json
from imgclf.errors import StageInputError
from imgclf.evaluation import labelissues
from imgclf.evaluation.candidate import evaluated, test_split, trained_classes
from imgclf.evaluation.scoring import flat_metrics
from imgclf.params import Params
from imgclf.registry import decision, modelcard, registry


@dataclass(frozen=True)
class RegisterResult:
    promotion: dict[str, Any]  # what reports/promotion.json holds


def run(params: Params) -> RegisterResult:
    import mlflow

    saved = tracking.saved_run(params)
    if not params.path("metrics").exists():
        raise StageInputError(f"{params.paths.metrics}: the model was not evaluated; run `imgclf evaluate` first")
    # The last decision's report and card go first: after a failure there is none that
    # could be mistaken for this model's (and DVC sees the stage's outputs missing).
    for key in ("registered", "promotion", "model_card"):
        params.path(key).unlink(missing_ok=True)
    classes = trained_classes(params)
    model_hash = registry.content_hash(params.path("model"))
    tracking.use_experiment(params)
    client = mlflow.MlflowClient()
    trained = client.get_run(saved["run_id"]).data  # what the run ran with, and evaluate's tags
    scores, confusion = evaluated(params, classes, trained.tags, model_hash)
    metrics = flat_metrics(scores)
    tags = decision.version_tags(params, saved["run_id"], model_hash, metrics)

    cfg = params.registry
    models = registry.Registry(client, cfg.model_name)
    with registry.decision_lock(tracking.tracking_uri(params)):
        models.ensure("Image classifier trained by imgclf. Aliases: champion (what to serve), challenger "
                      "(the newest version the gate did not promote).")  # fmt: skip
        models.reconcile()  # a decision a killed process left half-applied is finished first
        version = models.find(model_hash)
        if version is None:
            version = models.create(saved["model_uri"], saved["run_id"], tags, decision.describe(params, tags))
            # None: a process on another machine registered the same model meanwhile.
            version = version or models.find(model_hash)
        else:
            models.drop_duplicates(model_hash)
        if version is not None and "gate_decision" not in version.tags and str(version.version) != models.champion():
            # New, or registered by a run that died before its gate.
            champion = decision.score_champion(models, classes, test_split(params, classes), params)
            outcome = decision.gate(models, str(version.version), metrics, champion, cfg)
        else:  # registered and gated (or promoted by hand) before
            outcome = decision.unchanged(models, version)

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
    suspects = labelissues.count(params.path("label_issues"))
    card = modelcard.render(params, classes, scores, confusion, saved, promotion, trained.params, suspects)
    with replacing(params.path("model_card")) as out:
        out.write(card)
    write_json(params.path("promotion"), promotion)
    with tracking.resume_run(params, saved["run_id"]):
        mlflow.set_tags({"registered_model": cfg.model_name, "registered_version": outcome.version})
        for key in ("promotion", "model_card"):
            mlflow.log_artifact(str(params.path(key)), artifact_path="registry")
    # Last: DVC's record that this model is registered, so a failure above reruns the stage.
    write_json(params.path("registered"), {"model_name": cfg.model_name, "content_hash": model_hash})
    return RegisterResult(promotion=promotion)
