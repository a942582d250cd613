"""Diff two tracemalloc snapshots a soak took (`--tracemalloc DIR`): where did memory go?

    python -m tests.soak.tmdiff DIR/s4_router-123-1.snap DIR/s4_router-123-2.snap [--top 25]

Prints the allocation sites whose live size grew most between the two snapshots, grouped by
traceback (the innermost project frames first), with the growth in KiB and in blocks.
"""

from __future__ import annotations

import argparse
import tracemalloc

_ROOT = str(__import__("pathlib").Path(__file__).resolve().parents[2]) + "/"
_NOISE = (tracemalloc.__file__, "<frozen importlib._bootstrap>", "<unknown>")


def diff(before: str, after: str, top: int = 25, group: str = "traceback", frames: int = 8) -> str:
    a = tracemalloc.Snapshot.load(before).filter_traces(
        [tracemalloc.Filter(False, n) for n in _NOISE]
    )
    b = tracemalloc.Snapshot.load(after).filter_traces(
        [tracemalloc.Filter(False, n) for n in _NOISE]
    )
    stats = b.compare_to(a, group)
    total = sum(s.size_diff for s in stats)
    lines = [f"total growth {total / 1024:.0f} KiB over {len(stats)} sites"]
    for s in stats[:top]:
        where = [
            f.strip().replace(_ROOT, "")
            for f in s.traceback.format(limit=frames, most_recent_first=True)
            if f.strip().startswith("File")
        ] or ["?"]
        lines.append(f"+{s.size_diff / 1024:8.0f} KiB  +{s.count_diff:7d} blocks  {where[0]}")
        lines.extend("      " + f for f in where[1:])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--group", default="traceback", choices=("traceback", "lineno", "filename"))
    args = ap.parse_args(argv)
    print(diff(args.before, args.after, args.top, args.group, args.frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
