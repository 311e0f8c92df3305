"""imgclf serve's FastPath against MLflow's own scoring app, in one process, on one model.

Every plain JSON form a client may send, good or refused, must get the same status and
the same predictions (or the same error) from both: the fast path may only be faster.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import mlflow
import pytest

from images import encode, pixels, png_bomb, rgb
from imgclf import tracking
from imgclf.params import load_params
from imgclf.serving.server import MAX_BODY_ENV, MODEL_ENV, BodyLimit, FastPath, create_app
from models import log_tiny_model


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastPath]:
    root = tmp_path_factory.mktemp("fast")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("SERVING_MODEL_CONFIG", raising=False)
        uri = log_tiny_model(root, 1_000_000)
        mlflow.set_tracking_uri(tracking.tracking_uri(load_params(root / "params.yaml")))
        local = mlflow.artifacts.download_artifacts(uri, dst_path=str(root / "served"))
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        patch.setenv(MODEL_ENV, local)
        patch.setenv(MAX_BODY_ENV, str(2**20))
        app = create_app()
    assert isinstance(app, BodyLimit) and isinstance(app.app, FastPath)  # an imgclf model gets the fast path
    yield app.app


def post(app: Any, body: bytes) -> tuple[int, Any]:
    """One POST /invocations through an ASGI app: (status, parsed JSON answer)."""
    sent: list[dict[str, Any]] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http", "method": "POST", "path": "/invocations", "headers": headers,
        "query_string": b"", "http_version": "1.1", "scheme": "http", "root_path": "",
        "server": ("127.0.0.1", 5001), "client": ("127.0.0.1", 40000),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(content)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PNG, JPEG = b64(encode(rgb(1, (40, 30)), "PNG")), b64(encode(rgb(2, (64, 48)), "JPEG"))
IMAGE = pixels(3, (12, 10))
SCALED = (IMAGE / 255).round(3).tolist()  # a 0-1 image: was truncated to black and answered 200

GOOD = {
    "dataframe_split": {"dataframe_split": {"columns": ["image"], "data": [[PNG], [JPEG]]}},
    "dataframe_split with index": {"dataframe_split": {"index": [7, 8], "columns": ["image"], "data": [[PNG], [JPEG]]}},
    "dataframe_records": {"dataframe_records": [{"image": JPEG}, {"image": PNG}]},
    "inputs dict": {"inputs": {"image": [PNG, JPEG]}},
    "inputs uint8 array": {"inputs": [IMAGE.tolist()]},
    "inputs whole floats": {"inputs": [IMAGE.astype(float).tolist()]},
    "instances array": {"instances": [IMAGE.tolist(), IMAGE[::-1].tolist()]},
    "one (h, w, 3) array": {"inputs": IMAGE.tolist()},
}
REFUSED = {
    "png bomb": {"inputs": {"image": [PNG, b64(png_bomb(13_000, 13_000))]}},
    "over the recorded max_pixels": {"dataframe_records": [{"image": b64(encode(rgb(0, (1001, 1000)), "PNG"))}]},
    "0-1 floats": {"inputs": [IMAGE.tolist(), SCALED]},
    "not base64": {"dataframe_split": {"columns": ["image"], "data": [["not *base64*"]]}},
    "not an image": {"inputs": {"image": [b64(b"GIF89a but no more")]}},
    "65 images": {"inputs": {"image": [PNG] * 65}},
    "two channels": {"inputs": [[[1, 2], [3, 4]]]},
}


@pytest.mark.parametrize("name", list(GOOD))
def test_a_good_request_gets_mlflows_answer(fast: FastPath, name: str) -> None:
    body = json.dumps(GOOD[name]).encode()
    assert fast.answer(body) is not None  # answered by the fast path, not handed on
    status, answer = post(fast, body)
    assert status == 200 and len(answer["predictions"]) >= 1
    assert (status, answer) == post(fast.app, body)  # MLflow's app, the same model


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_refused_request_gets_mlflows_status_and_message(fast: FastPath, name: str) -> None:
    body = json.dumps(REFUSED[name]).encode()
    assert fast.answer(body) is not None
    status, answer = post(fast, body)
    mlflow_status, mlflow_answer = post(fast.app, body)
    assert status == mlflow_status == 400 and answer["error_code"] == mlflow_answer["error_code"]
    # MLflow's message also repeats the whole request ("Failed to predict data '...'"); ours is its end.
    assert answer["message"].startswith("image ") or "images in one request" in answer["message"]
    assert mlflow_answer["message"].endswith(answer["message"])


@pytest.mark.parametrize(
    "body",
    [b'{"dataframe_split": ', b'{"inputs": {"image": ["x"]}, "params": {"k": 1}}', b'{"columns": ["image"]}'],
    ids=["malformed JSON", "with params", "no known key"],
)
def test_anything_else_is_left_to_mlflows_app(fast: FastPath, body: bytes) -> None:
    assert fast.answer(body) is None
    assert post(fast, body) == post(fast.app, body)


def test_the_fast_path_holds_the_recorded_limits(fast: FastPath) -> None:
    assert (fast.limits.max_pixels, fast.limits.max_images) == (1_000_000, 64)
