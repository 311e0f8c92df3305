"""`imgclf serve` as a user runs it, against hostile and careless requests, then SIGTERM.

One real server (uvicorn, two workers) for every case: a tiny Keras model logged with
``max_pixels: 1000000`` in its params, served after params.yaml went back to the
default, so the limit it applies can only be the one recorded with the model.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from images import encode, pixels, png_bomb, rgb
from imgclf.orchestration.stopping import live_descendants, running
from models import log_tiny_model
from runner import free_port, wait_for_http

pytestmark = pytest.mark.slow

RECORDED_MAX_PIXELS = 1_000_000


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    def post(self, body: bytes, headers: dict[str, str] | None = None, chunked: bool = False) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            payload: Any = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
            connection.request(
                "POST",
                "/invocations",
                body=payload,
                headers={"Content-Type": "application/json", **(headers or {})},
                encode_chunked=chunked,
            )
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read())
        finally:
            connection.close()

    def send(self, payload: dict[str, Any]) -> tuple[int, Any]:
        return self.post(json.dumps(payload).encode())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        uri = log_tiny_model(root, RECORDED_MAX_PIXELS)
    (root / "params.yaml").write_text("{}\n", encoding="utf-8")  # validate.max_pixels back to its default

    port = free_port()
    command = [str(Path(sys.executable).with_name("imgclf")), "serve", "--model", uri, "--port", str(port)]
    command += ["--workers", "2", "--max-body-mb", "1", "--max-images", "8"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        command, cwd=root, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", process, 240)
        # Both workers: /ping answers once the first is up.
        for _ in range(120):
            if len(live_descendants(process.pid)) >= 3:  # uvicorn and its two workers
                break
            time.sleep(0.5)
        yield Server(process, port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def b64_png(image: Image.Image) -> str:
    return base64.b64encode(encode(image, "PNG")).decode()


def frame(*cells: str) -> dict[str, Any]:
    return {"dataframe_split": {"columns": ["image"], "data": [[c] for c in cells]}}


def test_good_images_and_whole_floats_are_answered(server: Server) -> None:
    status, answer = server.send(frame(b64_png(rgb(1, (40, 30))), b64_png(rgb(2, (20, 20)))))
    assert status == 200 and [p["label"] in {"cat", "dog"} for p in answer["predictions"]] == [True, True]
    image = pixels(3, (12, 10))
    status, as_ints = server.send({"inputs": [image.tolist()]})
    assert status == 200
    status, as_floats = server.send({"inputs": [image.astype(float).tolist()]})  # 12.0, not 12
    assert status == 200 and as_floats == as_ints


def test_a_png_bomb_is_refused(server: Server) -> None:
    bomb = base64.b64encode(png_bomb(13_000, 13_000)).decode()  # 0.2 MB, 169 Mpx
    status, answer = server.send(frame(b64_png(rgb(4)), bomb))
    assert status == 400
    assert "image 1: image too large: 13000x13000 is 169000000 pixels, over the limit of 1000000" in answer["message"]


def test_the_limit_recorded_with_the_model_applies(server: Server) -> None:
    # Flat images: they compress to a few KB, well under the body limit.
    assert server.send(frame(b64_png(Image.new("RGB", (1000, 1000), "gray"))))[0] == 200
    status, answer = server.send(frame(b64_png(Image.new("RGB", (1001, 1000), "gray"))))
    assert status == 400 and "over the limit of 1000000" in answer["message"]


def test_nan_and_fractions_are_refused(server: Server) -> None:
    nan = b'{"inputs": [[[[1, 2, 3], [4, 5, 6]], [[7, 8, NaN], [1, 2, 3]]]]}'  # Python's JSON reads NaN
    status, answer = server.post(nan)
    assert status == 400 and "image 0: image array values must be numbers from 0 to 255, found NaN" in answer["message"]
    scaled = [[[0.5, 0.9, 0.1]] * 4] * 4  # a 0-1 image: was truncated to black and answered 200
    status, answer = server.send({"inputs": [pixels(1, (4, 4)).tolist(), scaled]})
    assert status == 400 and "image 1: image array values must be whole numbers" in answer["message"]


def test_too_many_images_are_refused(server: Server) -> None:
    cells = [b64_png(rgb(i, (8, 8))) for i in range(9)]
    status, answer = server.send(frame(*cells))
    assert status == 400 and "9 images in one request; at most 8" in answer["message"]
    assert server.send(frame(*cells[:8]))[0] == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversize_body_is_413(server: Server, chunked: bool) -> None:
    body = json.dumps(frame(base64.b64encode(os.urandom(800_000)).decode())).encode()  # 1.07 MB > 1 MB
    status, answer = server.post(body, chunked=chunked)
    assert status == 413 and answer["error_code"] == "REQUEST_TOO_LARGE"
    assert "the limit is 1048576 bytes" in answer["message"]


def test_what_already_held_still_holds(server: Server) -> None:
    assert server.post(b'{"dataframe_split": ')[0] == 400  # malformed JSON
    status, answer = server.send(frame("this is not base64!"))
    assert status == 400 and "image 0: not base64 text" in answer["message"]
    status, answer = server.send({"inputs": [[[1, 2], [3, 4]]]})
    assert status == 400 and "(height, width, 3)" in answer["message"]


def test_one_sigterm_stops_the_server_and_every_worker_within_10_s(server: Server) -> None:
    """Last: it stops the module's server. The signal goes to imgclf only, as systemd sends it."""
    children = live_descendants(server.process.pid)
    assert len(children) >= 3, children  # uvicorn's supervisor and two workers
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=10)
    while any(running(pid) for pid in children) and time.monotonic() - started < 10:
        time.sleep(0.1)
    took = time.monotonic() - started
    assert not [pid for pid in children if running(pid)] and took < 10, f"{took:.1f} s"
    assert server.process.returncode == 0  # a clean stop, not a kill
