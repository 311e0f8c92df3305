"""Telemetry off by default: the variables that turn off each tool's usage reporting.

Set before MLflow, Great Expectations, DVC or Prefect is imported or started (children
inherit them); a value the user already set wins, so opting in stays possible.
"""

from __future__ import annotations

import os

OFF = {
    # MLflow honours DO_NOT_TRACK only when it is exactly "true".
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def quiet() -> None:
    """Telemetry off in this process and its children, unless the user already chose."""
    for name, value in OFF.items():
        os.environ.setdefault(name, value)
