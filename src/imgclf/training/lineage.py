"""What a training run records about its inputs in MLflow: every param, the provenance tags
(commit, data versions), a dirty tree's diff, and the three splits as MLflow datasets with
content digests."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path, PurePosixPath

from imgclf import provenance, tracking
from imgclf.data.manifest import read_manifest
from imgclf.params import Params
from imgclf.tables import read_csv


def log_inputs(params: Params, train_rows: list[dict[str, str]], split_csv: Path) -> None:
    """Params, provenance tags and the three splits as MLflow datasets.

    Each dataset's digest is over its images' content hashes (from the manifest), not
    their paths: renaming a file keeps the digest, changing a pixel changes it.
    """
    import warnings

    import mlflow
    import pandas as pd

    mlflow.log_params(tracking.flatten(params.model_dump(by_alias=True, exclude={"root"})))
    tags = provenance.collect(params)
    mlflow.set_tags(tags)
    if tags["git_dirty"] == "true":
        # The uncommitted code and params that train this model: without them its commit
        # alone cannot rebuild it (`imgclf reproduce` applies this diff on the commit).
        with tempfile.TemporaryDirectory() as folder:
            patch = Path(folder) / PurePosixPath(provenance.DIFF_ARTIFACT).name
            patch.write_bytes(provenance.source_diff(params.root))
            mlflow.log_artifact(str(patch), artifact_path=str(PurePosixPath(provenance.DIFF_ARTIFACT).parent))
        mlflow.set_tag(provenance.DIFF_TAG, provenance.DIFF_ARTIFACT)
    # The run's name in the UI (MLflow's default is random words): its model, size and commit.
    name = tracking.run_name(
        arch=params.model.arch,
        backbone=params.model.backbone,
        size=params.train.size,
        commit=tags["git_commit"],
        dirty=tags["git_dirty"],
    )
    mlflow.set_tag("mlflow.runName", name)
    content = {r.path: r.sha256 for r in read_manifest(params.path("manifest"))}
    split_rows = read_csv(split_csv)
    sets = {
        "training": (params.paths.augment_list, [{**r, "path": r["source"]} for r in train_rows]),
        "validation": (params.paths.split, [r for r in split_rows if r["split"] == "val"]),
        "test": (params.paths.split, [r for r in split_rows if r["split"] == "test"]),
    }
    for context, (source, rows) in sets.items():
        lines = sorted(f"{r['label']},{content.get(r['path'], r['path'])}" for r in rows)
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]  # MLflow allows 36
        with warnings.catch_warnings():
            # MLflow registers one source class under two schemes and warns about its own ambiguity.
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways.*")
            dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
                pd.DataFrame(rows), source=source, name=context, targets="label", digest=digest
            )
        mlflow.log_input(dataset, context=context)
