"""Waiting for a server this process started to answer: the temporary Prefect server of
`imgclf run`, and the servers the tests start."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable


def answers(url: str, timeout: float = 2) -> bool:
    """True when ``url`` answers HTTP 200 within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return bool(answer.status == 200)
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def wait_until_up(url: str, alive: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    """Poll ``url`` until it answers 200 (True), or until ``alive()`` says the server died
    or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while not answers(url):
        if not alive() or time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True
