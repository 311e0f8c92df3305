"""Files Keras downloads into its own cache: ImageNet weights (``~/.keras/models``) and the
keras.datasets archives (``~/.keras/datasets``).

Keras fetches a file only when it is not in the cache, so a machine without a network
works once someone has put the file there. When it cannot, the user gets one line naming
the file, where it came from and the exact folder Keras looks in.
"""

from __future__ import annotations

import os
import socket
import tempfile
import urllib.error
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imgclf.errors import DownloadUnavailable

# Seconds a connect or a read may stall. urlretrieve, which Keras uses, has no timeout of its
# own: behind a firewall that drops packets it would wait forever instead of failing.
STALL_SECONDS = 30.0


@dataclass(frozen=True)
class Wanted:
    """A file as Keras's ``get_file`` names it in its cache, and where it downloads it from."""

    name: str  # the file name in the cache folder (not always the origin's name)
    origin: str
    checks_hash: bool = False  # Keras refuses a cached copy whose checksum is not the one it knows


def cache_folder(subdir: str) -> Path:
    """The folder ``keras.utils.get_file(cache_subdir=subdir)`` reads and writes.

    KERAS_HOME (read by Keras once, at import) or ``~/.keras``; Keras falls back to
    ``/tmp/.keras`` when that folder is not writable, and so does this.
    """
    from keras.src.backend.config import keras_home  # get_file's own source of the folder

    base = os.path.expanduser(keras_home())
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / subdir


@contextmanager
def fetching(what: str, subdir: str, files: Sequence[Wanted], otherwise: str = "") -> Iterator[None]:
    """Run a Keras call that may download ``files`` into ``cache_folder(subdir)``; a failed
    download becomes one line saying which file to put where.

    Args:
        what: who asked and for what, e.g. "model.weights: imagenet: the ImageNet weights of VGG16".
        otherwise: the other ways out, appended to the line (e.g. "or set model.weights: null").

    Raises:
        DownloadUnavailable: a file was missing (or failed its checksum) and could not be fetched.
    """
    folder = cache_folder(subdir)
    present = [wanted for wanted in files if (folder / wanted.name).is_file()]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(STALL_SECONDS)
    try:
        yield
    except Exception as exc:
        reason = _fetch_failure(exc)
        if reason is None:
            raise
        missing = [wanted for wanted in files if not (folder / wanted.name).is_file()] or list(files)
        raise DownloadUnavailable(_advice(what, reason, folder, missing, present, otherwise)) from exc
    finally:
        socket.setdefaulttimeout(previous)


def _fetch_failure(exc: BaseException) -> str | None:
    """Why ``keras.utils.get_file`` failed to fetch, or None if ``exc`` is not a fetch failure.

    Keras turns URLError/HTTPError into ``Exception("URL fetch failure on <origin>: ...")``,
    lets a stalled read's TimeoutError through, and raises ValueError("Incomplete or
    corrupted file detected...") when a download fails its checksum.
    """
    text = str(exc)
    if text.startswith("URL fetch failure"):
        cause = exc.__context__
        if isinstance(cause, urllib.error.HTTPError):
            return f"HTTP {cause.code}"
        if isinstance(cause, urllib.error.URLError):
            # "Name or service not known" (no DNS), "Connection refused", ...
            return getattr(cause.reason, "strerror", None) or str(cause.reason)
        return text
    if isinstance(exc, TimeoutError):
        return f"no answer for {STALL_SECONDS:.0f} s"
    if isinstance(exc, ConnectionError):
        return type(exc).__name__
    if isinstance(exc, ValueError) and text.startswith("Incomplete or corrupted file"):
        return "the download did not match Keras's checksum"
    return None


def _advice(what: str, reason: str, folder: Path, missing: list[Wanted], present: list[Wanted], otherwise: str) -> str:
    if len(missing) == 1:
        get = f"download {missing[0].origin} and save it as {folder / missing[0].name}"
    else:
        base = missing[0].origin.rsplit("/", 1)[0] + "/"  # one data set's files share a folder
        get = f"download {', '.join(w.name for w in missing)} from {base} into {folder}{os.sep}"
    # Keras re-downloads a cached file whose checksum it does not know, and deletes it
    # when that fails: say so, or the user wonders where their copy went.
    stale = [wanted.name for wanted in present if wanted.checks_hash and wanted in missing]
    note = f" ({', '.join(stale)} was there but is not the file Keras knows: Keras removed it)" if stale else ""
    tail = f"; {otherwise}" if otherwise else ""
    return f"{what}: Keras could not download it ({reason}){note}. On a machine with a network, {get}{tail}"
