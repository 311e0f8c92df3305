"""The HTTP app behind ``imgclf serve``: MLflow's scoring server, a body limit, a fast path.

MLflow's app (the same /invocations, /ping, /health and /version as ``mlflow models
serve``) reads a whole request body into memory before anything looks at it, and
has no limit of its own. ``BodyLimit`` sits in front of it: a body over the limit is
answered 413 and never held, whether its Content-Length says so or a chunked body
grows past the limit. What is inside a body (images, their pixels, their values) is
the model's to check (imgclf.serving.classifier).

``FastPath`` answers the JSON requests an imgclf model reads (``dataframe_split``,
``dataframe_records``, ``inputs``, ``instances``) itself: the same decoding, limits,
model call and JSON answer as MLflow's app, without its pandas and schema round trip
and its thread per request, which cost ~10 ms of the ~15 ms a single image took.
Anything else (CSV, ``params``, another model's flavour) goes to MLflow's app unchanged.

uvicorn builds the app in each worker with ``create_app`` (``--factory``), from the
environment that ``imgclf serve`` sets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

MODEL_ENV = "IMGCLF_SERVE_MODEL"  # a local model folder (imgclf serve downloads it once)
MAX_BODY_ENV = "IMGCLF_SERVE_MAX_BODY"  # bytes
# A refused body is read and dropped up to this size before the 413, so that a client
# still sending gets to read the answer rather than a connection reset; past it the
# connection is closed at once. Reading costs bandwidth, never memory.
DRAIN_LIMIT = 256 * 2**20

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``, before it is buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                # A client that asked "Expect: 100-continue" has not sent the body yet and
                # will not: answer at once (reading would invite it to send).
                waiting = _header(scope, b"expect") == b"100-continue"
                await self._refuse(receive, send, declared, received=0, more=True, drain=not waiting)
            else:
                # The server delivers no more than Content-Length: nothing to count.
                await self.app(scope, receive, send)
            return
        # Chunked (no length given): buffer up to the limit, then hand the app the whole body.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if size > self.max_bytes:
                await self._refuse(receive, send, None, received=size, more=more)
                return
            chunks.append(chunk)
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _refuse(
        self, receive: Receive, send: Send, declared: int | None, received: int, more: bool, drain: bool = True
    ) -> None:
        if drain and (declared is None or declared <= DRAIN_LIMIT):
            while more and received <= DRAIN_LIMIT:
                message = await receive()
                if message["type"] != "http.request":
                    break
                received += len(message.get("body", b""))
                more = bool(message.get("more_body", False))
        size = f"of {declared} bytes" if declared is not None else f"over {self.max_bytes} bytes"
        answer = json.dumps(
            {
                "error_code": "REQUEST_TOO_LARGE",
                "message": f"request body {size}; the limit is {self.max_bytes} bytes "
                f"({self.max_bytes / 2**20:g} MB, imgclf serve --max-body-mb): send fewer or smaller images",
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        if more:  # the rest of the body was not read: the connection cannot carry another request
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).lower()
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the server itself refuses a malformed length


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body (BodyLimit in front has bounded it); None if the client left."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body", False))
    return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands an app the body already read, then the client's own messages."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()  # http.disconnect, when it comes
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def model_input(payload: Any) -> Any | None:
    """What MLflow's app would hand the model for a JSON payload, or None when this is not
    one of the four plain forms (then MLflow's app answers it, as it always did).

    ``dataframe_split`` and ``dataframe_records`` become ``{"image": cells}``; ``inputs``
    and ``instances`` stay as sent: a dict with an ``image`` list, or an array of images.
    """
    if not isinstance(payload, dict) or len(payload) != 1:
        return None  # "params", or no recognised key: MLflow's own handling and errors
    ((key, value),) = payload.items()
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            return None
        columns = value.get("columns")
        if not isinstance(columns, list) or columns.count("image") != 1:
            return None
        at = columns.index("image")
        rows = value["data"]
        if not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
            return None
        return {"image": [row[at] for row in rows]}
    if key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) and "image" in r for r in value):
            return None
        return {"image": [record["image"] for record in value]}
    if key in ("inputs", "instances"):
        if isinstance(value, dict) and set(value) == {"image"}:
            cells = value["image"]
            return {"image": cells if isinstance(cells, list) else [cells]}
        if isinstance(value, list) and value and isinstance(value[0], list):
            return value  # an array: (h, w, 3) or (n, h, w, 3)
    return None


class FastPath:
    """ASGI: POST /invocations of a plain JSON form, answered by the imgclf model directly.

    The model runs in the event loop: a worker answers one request at a time, which is
    all its share of the cores allows, and more workers (imgclf serve --workers, each on
    its own socket) answer side by side. Measured on 2 cores, a thread per request
    (MLflow's way) doubled the latency: the loop and the model fought over the GIL.
    """

    def __init__(self, app: ASGIApp, python_model: Any) -> None:
        self.app = app
        self.classifier = python_model.classifier
        self.limits = python_model.limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/invocations"):
            await self.app(scope, receive, send)
            return
        content_type = (_header(scope, b"content-type") or b"").replace(b" ", b"")
        if content_type not in (b"application/json", b"application/json;charset=utf-8"):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return
        answer = self.answer(body)
        if answer is None:  # not ours: MLflow's app reads the same body
            await self.app(scope, replaying(body, receive), send)
            return
        status, content = answer
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def answer(self, body: bytes) -> tuple[int, bytes] | None:
        """(status, JSON) as MLflow's app would give them, or None to leave the request to it."""
        from imgclf.serving.requests import InputError

        try:
            given = model_input(json.loads(body))
        except ValueError:
            return None  # malformed JSON or text: MLflow's 400 and message
        if given is None:
            return None
        try:
            probs = self.classifier.request_probabilities(given, self.limits)
        except InputError as exc:
            error = {"error_code": "INVALID_PARAMETER_VALUE", "message": str(exc)}
            return 400, json.dumps(error).encode()
        return 200, json.dumps({"predictions": self.classifier.records(probs)}).encode()


def create_app() -> ASGIApp:
    """MLflow's scoring app for the model in $IMGCLF_SERVE_MODEL, behind BodyLimit, with
    FastPath in between when the model is imgclf's.

    MLflow reads SERVING_MODEL_CONFIG for overrides of the model config (imgclf serve
    --max-images sets it).
    """
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(os.environ[MODEL_ENV])  # type: ignore[no-untyped-call]
    app: ASGIApp = scoring_server.init(model)
    try:
        python_model = model.unwrap_python_model()
    except Exception:  # noqa: BLE001 - not a Python-model pyfunc (another flavour)
        python_model = None
    if hasattr(python_model, "classifier") and hasattr(python_model, "limits"):
        app = FastPath(app, python_model)
    return BodyLimit(app, int(os.environ[MAX_BODY_ENV]))
