"""Running the project's commands as a user would, from tests."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imgclf(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``imgclf`` entry point as a user would."""
    command = [str(Path(sys.executable).with_name("imgclf")), *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
