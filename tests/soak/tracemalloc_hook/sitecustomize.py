"""Loaded by every Python process of a soak started with `--tracemalloc DIR` (PYTHONPATH).

Starts tracemalloc and dumps a snapshot to `$SOAK_TRACEMALLOC_DIR/<module>-<pid>-<n>.snap` on
SIGUSR2, so the soak driver can take one after warm-up and one at the end of the run and diff
them (`python -m tests.soak.tmdiff A B`) — no change to the services, no debug endpoint.
A process started without the variable is left alone.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

_DIR = os.environ.get("SOAK_TRACEMALLOC_DIR")


def _name() -> str:
    argv = sys.orig_argv
    if "-m" in argv and argv.index("-m") + 1 < len(argv):
        return argv[argv.index("-m") + 1]
    return Path(argv[-1]).stem if argv else "python"


if _DIR:
    # Frames enough to tell which caller keeps a block, not so many that the run crawls.
    tracemalloc.start(int(os.environ.get("SOAK_TRACEMALLOC_FRAMES", "12")))
    _count = [0]

    def _dump(_sig: int, _frame: FrameType | None) -> None:
        _count[0] += 1
        path = Path(_DIR) / f"{_name()}-{os.getpid()}-{_count[0]}.snap"
        tracemalloc.take_snapshot().dump(str(path))

    signal.signal(signal.SIGUSR2, _dump)
