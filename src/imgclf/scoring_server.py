"""The HTTP app behind ``imgclf serve``: MLflow's own scoring server behind a body limit.

MLflow's app (the same /invocations, /ping, /health and /version as ``mlflow models
serve``) reads a whole request body into memory before anything looks at it, and
has no limit of its own. ``BodyLimit`` sits in front of it: a body over the limit is
answered 413 and never held, whether its Content-Length says so or a chunked body
grows past the limit. What is inside a body (images, their pixels, their values) is
the model's to check (imgclf.serving).

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
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # http.disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

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


def create_app() -> ASGIApp:
    """MLflow's scoring app for the model in $IMGCLF_SERVE_MODEL, behind BodyLimit.

    MLflow reads SERVING_MODEL_CONFIG for overrides of the model config (imgclf serve
    --max-images sets it).
    """
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(os.environ[MODEL_ENV])  # type: ignore[no-untyped-call]
    app: ASGIApp = scoring_server.init(model)
    return BodyLimit(app, int(os.environ[MAX_BODY_ENV]))
