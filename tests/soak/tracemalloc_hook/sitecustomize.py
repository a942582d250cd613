"""Loaded by every Python process of a soak started with `--tracemalloc DIR` (PYTHONPATH).

Starts tracemalloc at interpreter start and dumps a snapshot to
`$SOAK_TRACEMALLOC_DIR/<module>-<pid>-<n>.snap` on SIGUSR2: the soak driver signals after
warm-up and at the end of the run, and `python -m tests.soak.tmdiff A B` shows what grew in
between — no change to the services, no debug endpoint. (Tracing from the start slows imports:
the soak gives devstack a longer start deadline. Starting it later, from the signal handler,
stalled S4 in one run, with its threads allocating while the hooks went in.)
A process started without the variable is left alone, and so is one whose module is not in
`SOAK_TRACEMALLOC_ONLY` (comma list, e.g. `s4_router`) when that is set: tracing every process
of the stack at once starves a shared 2-core machine.
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


_ONLY = {m for m in os.environ.get("SOAK_TRACEMALLOC_ONLY", "").split(",") if m}

if _DIR and (not _ONLY or _name() in _ONLY):
    # Frames enough to tell which caller keeps a block, not so many that the run crawls.
    tracemalloc.start(int(os.environ.get("SOAK_TRACEMALLOC_FRAMES", "8")))
    _count = [0]

    def _dump(_sig: int, _frame: FrameType | None) -> None:
        _count[0] += 1
        path = Path(_DIR) / f"{_name()}-{os.getpid()}-{_count[0]}.snap"
        tracemalloc.take_snapshot().dump(str(path))

    signal.signal(signal.SIGUSR2, _dump)
