"""Unit-test fixtures: Keras's download cache in tmp_path, and a network that refuses every
connection, so tests of ImageNet weights and keras.datasets never download (or hang) anywhere."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgclf.orchestration.flowrun import free_port


@pytest.fixture
def keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty KERAS_HOME. Keras reads the variable once, at import, into its config
    module: point that value at the folder too, as a process started with it would see."""
    import keras.src.backend.config as keras_config

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """urllib (what keras.utils.get_file downloads with) sends every request through a
    proxy on a closed local port: a real attempt, refused at once, online or not."""
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    previous = urllib.request._opener  # type: ignore[attr-defined]
    proxies = urllib.request.ProxyHandler({"http": dead, "https": dead})
    urllib.request.install_opener(urllib.request.build_opener(proxies))
    try:
        yield dead
    finally:
        urllib.request.install_opener(previous)
