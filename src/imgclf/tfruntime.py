"""Importing TensorFlow quietly.

TensorFlow's C++ core logs start-up notes (oneDNN, "no CUDA drivers", a failed
cuInit on a machine without a GPU) before its log level is read, so no environment
variable silences them. They are captured here and shown only if the import fails.
"""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow() -> None:
    """Import TensorFlow (and probe its devices) with file descriptor 2 captured."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the cuInit probe logs here, not at import
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
