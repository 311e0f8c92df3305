"""The processes behind ``imgclf serve``: N uvicorn workers, each on its own listening socket.

uvicorn's own ``--workers`` shares one listening socket, and an idle worker's event
loop accepts every connection that is waiting at once: 8 keep-alive clients that
connect together all land on one worker while the other idles (measured: 1.1 of 2
cores busy, p99 120 ms). Here each worker binds its own socket with SO_REUSEPORT, so
the kernel spreads new connections across the workers.

    python -m imgclf.serving.workers HOST PORT WORKERS

runs until every worker has ended. ``imgclf serve`` runs it through
imgclf.serving.supervise.run_child, which sends a stop signal to the whole process group: each
worker gets it and ends as uvicorn does (its answers in flight first, at most 5 s).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from collections.abc import Callable

GRACE = 5  # seconds a worker gives requests in flight after SIGTERM (run_child kills at 7)
POLL = 0.5  # seconds between looks at whether imgclf serve is still there, once a stop was asked


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket on host:port that other workers of this server may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0 (uvicorn's own): asyncio sets TCP_NODELAY only on sockets that
    # say TCP. Without it, Nagle holds a response's body behind its headers until the
    # client's delayed ACK: every answer took 40 ms or more once two clients were connected.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def worker(host: str, port: int, sock: socket.socket) -> None:
    """One uvicorn server on ``sock``: the app is built here, so each worker holds its model."""
    import uvicorn

    config = uvicorn.Config(
        "imgclf.serving.server:create_app", factory=True, host=host, port=port, timeout_graceful_shutdown=GRACE
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(host: str, port: int, workers: int, target: Callable[[str, int, socket.socket], None] = worker) -> int:
    """Serve until the workers end; 0 after a stop signal, else the first failure's code.

    Args:
        target: what each worker process runs (a module-level function: workers are spawned).
    """
    # Bound here, before any worker starts, so a port in use fails at once and in one place.
    sockets = [listening_socket(host, port) for _ in range(workers)]
    parent = os.getppid()  # imgclf serve
    asked: list[int] = []
    # The stop signal reaches every worker of the group too: this process only waits for
    # them (dying first would let run_child kill them mid-answer).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: asked.append(signum))
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, nothing forked
    processes = [
        spawn.Process(target=target, args=(host, port, sock), name=f"imgclf-serve-{i}")
        for i, sock in enumerate(sockets)
    ]
    for process in processes:
        process.start()
    for sock in sockets:
        sock.close()  # each worker holds its own copy
    pending = list(processes)
    failure, orphaned = 0, False
    while pending:
        ended = multiprocessing.connection.wait([p.sentinel for p in pending], timeout=POLL)
        if asked and not orphaned and os.getppid() != parent:
            # imgclf serve was killed (SIGKILL, OOM): the kernel signalled this process alone
            # (PR_SET_PDEATHSIG), not the group, so the workers would serve on, orphaned.
            orphaned = True
            for process in pending:
                process.terminate()
        for process in [p for p in pending if p.sentinel in ended]:
            process.join()
            pending.remove(process)
            code = process.exitcode or 0
            if not asked and code and not failure:  # a worker died on its own: stop the rest
                failure = 128 - code if code < 0 else code
                for other in pending:
                    other.terminate()
    return failure


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
