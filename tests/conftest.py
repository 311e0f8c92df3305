"""Shared fixtures: a project folder in tmp_path with its own params.yaml and raw images."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from imgclf import telemetry

# Telemetry off (not merely by default: whatever the developer's shell says), and quiet Prefect.
os.environ.update({**telemetry.OFF, "PREFECT_LOGGING_LEVEL": "WARNING"})


@pytest.fixture
def write_params(tmp_path: Path) -> Callable[..., Path]:
    """Write tmp_path/params.yaml from section overrides, e.g. write_params(split={"seed": 3})."""

    def write(**sections: dict[str, Any]) -> Path:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(sections), encoding="utf-8")
        return path

    return write
