"""An address where a server is down at first and up later: the port refuses connections
until the gate opens, then forwards each one to the real server. A real server's startup
(seconds to a minute) no longer has to fit inside the delay the test waits for."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

from runner import free_port


class Gate:
    """``url`` refuses connections until ``open()``; then every connection goes to
    127.0.0.1:``target``, waiting (up to ``patience`` seconds) for that server to listen."""

    def __init__(self, target: int, patience: float = 180) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._target, self._patience = target, patience
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._keep(listener)
        threading.Thread(target=self._accept, args=(listener,), name="gate-accept", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            self._sockets.clear()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed
                return
            self._keep(client)
            threading.Thread(target=self._forward, args=(client,), name="gate-forward", daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        deadline = time.monotonic() + self._patience
        while True:
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    client.close()
                    return
                time.sleep(0.2)
        upstream.settimeout(None)
        self._keep(upstream)
        threading.Thread(target=_pump, args=(upstream, client), name="gate-pump", daemon=True).start()
        _pump(client, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then pass the end on (HTTP keep-alive works both ways)."""
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
