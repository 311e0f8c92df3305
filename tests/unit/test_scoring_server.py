"""BodyLimit, the ASGI middleware in front of MLflow's scoring app: driven with ASGI messages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from imgclf.serving.server import BodyLimit

LIMIT = 1000


class Echo:
    """An ASGI app that reads the whole body and answers its length (or is never called)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


def call(chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[Echo, list[dict[str, Any]], int]:
    """Run one request through BodyLimit(Echo): (the app, what was sent back, chunks left unread)."""
    app, sent = Echo(), []
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    asyncio.run(BodyLimit(app, LIMIT)(scope, receive, send))
    return app, sent, len(pending)


def length(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(n).encode())]


def test_a_body_within_the_limit_reaches_the_app() -> None:
    app, sent, _ = call([b"x" * 600, b"x" * 400], length(LIMIT))
    assert app.calls == 1 and sent[0]["status"] == 200 and sent[1]["body"] == b"1000"


def test_a_declared_length_over_the_limit_is_413_without_calling_the_app() -> None:
    app, sent, unread = call([b"x" * 600] * 3, length(1800))
    assert app.calls == 0 and sent[0]["status"] == 413
    assert unread == 0  # read and dropped, so the client gets to read the answer
    answer = json.loads(sent[1]["body"])
    assert answer["error_code"] == "REQUEST_TOO_LARGE"
    assert "request body of 1800 bytes; the limit is 1000 bytes" in answer["message"]


def test_a_client_waiting_for_100_continue_gets_413_at_once() -> None:
    app, sent, unread = call([b"x" * 600] * 3, [*length(1800), (b"expect", b"100-continue")])
    assert app.calls == 0 and sent[0]["status"] == 413 and unread == 3
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_chunked_body_is_cut_off_at_the_limit() -> None:
    app, sent, _ = call([b"x" * 600] * 3, [(b"transfer-encoding", b"chunked")])
    assert app.calls == 0 and sent[0]["status"] == 413
    assert "request body over 1000 bytes" in json.loads(sent[1]["body"])["message"]


def test_a_chunked_body_within_the_limit_is_handed_over_whole() -> None:
    app, sent, _ = call([b"x" * 300] * 3, [(b"transfer-encoding", b"chunked")])
    assert app.calls == 1 and sent[1]["body"] == b"900"


def test_other_scopes_pass_through() -> None:
    app, sent = Echo(), []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def lifespan(scope: Any, receive: Any, send: Any) -> None:
        sent.append(await receive())

    asyncio.run(BodyLimit(lifespan, LIMIT)({"type": "lifespan"}, receive, send))
    assert sent == [{"type": "lifespan.startup"}] and app.calls == 0
