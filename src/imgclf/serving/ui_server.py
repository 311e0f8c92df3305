"""``imgclf ui``: MLflow's tracking server (its UI and REST API) on the project's store, in
one process.

``mlflow ui`` starts one process that imports MLflow's whole server to parse its options
and check the store, then uvicorn with four workers that each import it all again: 70 s
to the first page on a busy 2-core machine, 35 s with one worker. Here one process does
what that pair does for a local store: it passes the settings ``mlflow server`` gives its
workers (under MLflow's own names, mlflow.server.constants), opens the stores as
``mlflow server`` does first (a store from an older MLflow is migrated then, before any
page), and runs MLflow's FastAPI app in uvicorn. No job runner: the UI needs none.

    python -m imgclf.serving.ui_server STORE_URI ARTIFACTS_FOLDER HOST PORT
"""

from __future__ import annotations

import os
import sys
import warnings


def main(argv: list[str]) -> None:
    uri, artifacts, host, port = argv
    # MLflow's own app imports it; a user of the UI can do nothing about it.
    warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
    # Importing the constants imports mlflow.server: the app below needs all of it anyway.
    from mlflow.server import _UVICORN_LOG_CONFIG
    from mlflow.server.constants import (
        ARTIFACT_ROOT_ENV_VAR,
        ARTIFACTS_DESTINATION_ENV_VAR,
        BACKEND_STORE_URI_ENV_VAR,
        REGISTRY_STORE_URI_ENV_VAR,
        SERVE_ARTIFACTS_ENV_VAR,
    )
    from mlflow.store.tracking import DEFAULT_ARTIFACTS_URI

    # `mlflow ui`'s defaults (artifacts served through the server), except that a new
    # experiment's artifacts go beside the store rather than into ./mlartifacts.
    os.environ.update(
        {
            BACKEND_STORE_URI_ENV_VAR: uri,
            REGISTRY_STORE_URI_ENV_VAR: uri,
            ARTIFACT_ROOT_ENV_VAR: DEFAULT_ARTIFACTS_URI,
            SERVE_ARTIFACTS_ENV_VAR: "true",
            ARTIFACTS_DESTINATION_ENV_VAR: artifacts,
        }
    )
    import uvicorn
    from mlflow.server.handlers import initialize_backend_stores

    initialize_backend_stores(uri, uri, DEFAULT_ARTIFACTS_URI)
    from mlflow.server.fastapi_app import app

    uvicorn.run(app, host=host, port=int(port), log_config=str(_UVICORN_LOG_CONFIG))


if __name__ == "__main__":
    main(sys.argv[1:])
