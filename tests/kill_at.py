"""SIGKILL a training at an exact point of a checkpoint write.

``arm(point, k)`` makes the k-th (1-based) event at POINT kill the process, before any
code after it runs:
  weights-saved    Keras' Model.save_weights has returned: a weights file is complete
                   under the name the code chose (a temporary one, if it writes atomically).
  weights-renamed  os.replace has moved a file onto a ``*.weights.h5`` name: the backup
                   is in place and whatever follows (its marker) is not written yet.

Test-only fault injection: it wraps those two calls and nothing else, so the kill lands
in the window between a weights file and its marker, which polling cannot aim at. The
fault launcher (tests/faults.py) arms it in the forked child that runs ``imgclf train``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

POINTS = ("weights-saved", "weights-renamed")


def kill_after(count: int, wrapped: Callable[..., Any], applies: Callable[..., bool]) -> Callable[..., Any]:
    seen = 0

    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        result = wrapped(*args, **kwargs)
        if applies(*args, **kwargs):
            seen += 1
            if seen == count:
                os.kill(os.getpid(), signal.SIGKILL)
        return result

    return call


def arm(point: str, count: int) -> None:
    """From now on, this process dies by SIGKILL right after the ``count``-th event at ``point``."""
    import keras

    if point == "weights-saved":
        keras.Model.save_weights = kill_after(count, keras.Model.save_weights, lambda *a, **k: True)
    elif point == "weights-renamed":
        os.replace = kill_after(count, os.replace, lambda src, dst, **k: str(dst).endswith(".weights.h5"))
    else:
        raise ValueError(f"unknown point {point!r}; one of {', '.join(POINTS)}")
