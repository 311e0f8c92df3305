"""Shared fixtures: a project folder in tmp_path with its own params.yaml and raw images."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import prefectserver
from imgclf import telemetry

# Telemetry off (not merely by default: whatever the developer's shell says), and quiet Prefect.
os.environ.update({**telemetry.OFF, "PREFECT_LOGGING_LEVEL": "WARNING"})


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        prefectserver.make_shared()


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # after every worker ended
        prefectserver.stop()


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for `--dist loadgroup` (make test): a file's tests run on one worker, so its
    module fixtures (a trained project, a server) are built once; and the tests that use the
    run's Prefect server run on one worker, one after another, as they share its
    deployments (`imgclf schedule`'s is one name) and its queue."""
    for item in items:
        uses_prefect = "prefect_server" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group("prefect" if uses_prefect else item.nodeid.split("::")[0]))


@pytest.fixture
def write_params(tmp_path: Path) -> Callable[..., Path]:
    """Write tmp_path/params.yaml from section overrides, e.g. write_params(split={"seed": 3})."""

    def write(**sections: dict[str, Any]) -> Path:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(sections), encoding="utf-8")
        return path

    return write
