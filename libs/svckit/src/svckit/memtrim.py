"""Give the heap memory a process has freed back to the OS, periodically (glibc `malloc_trim`).

Why: a long-running service that allocates and frees many short-lived C-heap blocks (request
bodies, JSON, SQLite rows, pydantic-core buffers) between a few long-lived ones keeps the freed
memory in glibc's arena: `free()` only returns the top of the heap, so RSS ratchets up with the
fragmentation, not with live data. Measured in the soak (issue 15): S4's RSS grew ~13 KB per
MARKET order while its live Python objects grew ~2 KB; `malloc_trim(0)` released 15 of the
19.5 MB grown (it also returns whole free pages from the middle of the heap, MADV_DONTNEED).

On anything but glibc this is a no-op (`available()` is False).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

_trim: Callable[[int], int] | None = None
with contextlib.suppress(OSError, AttributeError, TypeError):
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _fn = _libc.malloc_trim
    _fn.argtypes = [ctypes.c_size_t]
    _fn.restype = ctypes.c_int
    _trim = _fn


def malloc_trim() -> bool:
    """Release free heap memory to the OS now; True when some was released."""
    return bool(_trim(0)) if _trim is not None else False


async def trim_loop(
    stop: asyncio.Event, *, interval_s: float, trim: Callable[[], bool] = malloc_trim
) -> None:
    """`trim()` every `interval_s` until `stop` (a few ms on a heap of tens of MB; the arena
    lock is held meanwhile, so it runs on the loop rather than beside it on a thread)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        if stop.is_set():
            return
        try:
            trim()
        except Exception:  # never let housekeeping take the service down
            log.exception("malloc_trim failed")
