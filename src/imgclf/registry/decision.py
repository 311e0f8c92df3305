"""The register stage's decision on a version, over registry.Registry: its provenance tags
and description, the champion scored on the same test split, and the gate's verdict
recorded with the alias move (or "unchanged" for a model already registered)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgclf import provenance
from imgclf.params import Params
from imgclf.registry import registry

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


def version_tags(params: Params, run_id: str, model_hash: str, metrics: dict[str, float]) -> dict[str, str]:
    """Provenance (commit, data md5s, params digest, content hash) and the test metrics."""
    settings = params.model_dump(by_alias=True, exclude={"root", "paths"})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return {
        **provenance.collect(params),
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


def score_champion(
    models: registry.Registry, classes: list[str], test: Examples, params: Params
) -> dict[str, Any] | None:
    """The champion's version and F1 on this test split, or why it could not be scored."""
    from imgclf.serving.pyfunc import load_pyfunc

    version = models.champion()
    if version is None:
        return None
    try:
        loaded = load_pyfunc(f"models:/{models.name}/{version}")
        champion: Classifier = loaded.classifier
    except Exception as exc:  # noqa: BLE001 - any model the registry holds; it is reported, not raised
        problem = f"the champion (version {version}) could not be loaded ({type(exc).__name__}): promote by hand"
        return {"version": version, "f1": None, "problem": problem}
    if champion.classes != classes:
        problem = (
            f"the champion (version {version}) predicts {champion.classes}, the data now has "
            f"{classes}: compare them yourself and `imgclf promote`"
        )
        return {"version": version, "f1": None, "problem": problem}
    scored = champion.score(test, params.evaluate.positive_class, params.evaluate.threshold, params.train.batch_size)
    return {"version": version, "f1": float(scored.metrics["f1"]), "problem": None}


def unchanged(models: registry.Registry, same: ModelVersion | None) -> Outcome:
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


def gate(
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
