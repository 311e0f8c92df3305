"""check stage: read the whole params.yaml before any other stage runs.

DVC deletes a stage's outputs just before it runs the stage's command, so a params
typo found by `imgclf train` itself would already have cost the last good model.
Every stage depends on this stage's output, so `dvc repro` (and the Prefect flow)
stops here first, with one line naming the key, before anything is deleted. The
output's content never changes, so a passing check reruns no other stage: each still
reruns only for its own params and files.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from imgclf import owned
from imgclf.atomic import write_json
from imgclf.params import Params

# Constant on purpose (see above); bump the version only if later stages must rerun.
RECORD = {"params": "valid", "version": 1}
# Output folders that DVC or a stage deletes whole before rebuilding them.
FOLDERS = ("augmented", "data_docs", "plots", "checkpoints")


def run(params: Params) -> Path:
    """Write ``paths.params_check`` once every key parsed, passed its bounds, and no
    output folder names a folder imgclf did not write.

    Raises:
        StageInputError: an output folder exists that neither carries imgclf's marker
            nor is recorded in dvc.lock: DVC would delete it.
    """
    recorded = _recorded_outputs(params.root / "dvc.lock")
    for key in FOLDERS:
        folder = params.path(key)
        if os.path.relpath(folder, params.root.resolve()) not in recorded:
            owned.check(folder, f"paths.{key}")
    path = params.path("params_check")
    write_json(path, RECORD)
    return path


def _recorded_outputs(lock: Path) -> set[str]:
    """Output paths dvc.lock records: folders DVC itself wrote, from before the marker existed."""
    try:
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):
        return set()
    return {os.path.normpath(out["path"]) for stage in stages.values() for out in stage.get("outs", [])}
