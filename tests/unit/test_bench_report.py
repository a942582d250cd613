"""`make bench`'s runner (tests/bench/report.py): figures handed over as data, progress lines
passed through, a hung benchmark stopped with its whole process group, a report written even
when a benchmark failed."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

from tests.bench import report
from tests.bench.report import Bench, run_one


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_a_data_bench_hands_its_figures_over_and_its_progress_reaches_the_terminal(
    tmp_path: Path,
) -> None:
    path = script(
        tmp_path,
        "fig",
        """
        import json, sys
        print("progress: 1/2 steps, ETA 1s", flush=True)
        print("a figure: 42", flush=True)
        out = sys.argv[sys.argv.index("--json") + 1]
        open(out, "w").write(json.dumps({"name": "fig", "p50": 1.25}))
    """,
    )
    said: list[str] = []
    r = run_one(
        Bench("fig", "a figure", (), (), 1, 1, data=True, path=path), (), 30, said.append, tmp_path
    )
    assert r["status"] == "ok" and r["rc"] == 0
    assert r["data"] == {"name": "fig", "p50": 1.25}
    assert any("progress: 1/2 steps" in line for line in said)
    assert "a figure: 42" in r["output"]
    assert "a figure: 42" in (tmp_path / "logs" / "fig.log").read_text()


def test_a_hung_bench_is_stopped_with_its_children_and_reported_as_a_timeout(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "child.pid"
    path = script(
        tmp_path,
        "hang",
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(120)
    """,
    )
    t0 = time.monotonic()
    r = run_one(Bench("hang", "hangs", (), (), 1, 1, path=path), (), 2.0, lambda _: None, tmp_path)
    assert r["status"] == "timeout"
    assert time.monotonic() - t0 < 30
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(child), "the bench's own child outlived the timeout"


def gone(pid: int) -> bool:
    """No such process, or a zombie left for init to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_failed_bench_still_gets_a_report_and_the_run_says_it_failed(tmp_path: Path) -> None:
    boom = script(tmp_path, "boom", "raise RuntimeError('broken on purpose')\n")
    fine = script(tmp_path, "fine", "print('target p50 ≤ 1 ms: MET', flush=True)\n")
    missed = script(tmp_path, "missed", "print('target p99 ≤ 5 ms: MISSED')\nraise SystemExit(1)\n")
    benches = [
        Bench("boom", "fails", (), (), 1, 1, path=boom),
        Bench("fine", "prints", (), (), 1, 1, path=fine),
        Bench("missed", "misses its target", (), (), 1, 1, path=missed),
    ]
    rep = report.run_all(benches, quick=True, say=lambda _: None, outdir=tmp_path)
    assert rep["results"]["boom"]["status"] == "failed"
    assert rep["results"]["fine"]["status"] == "ok"
    # Exit 1 with its figures printed is a verdict, not a broken benchmark.
    assert rep["results"]["missed"]["status"] == "verdict"
    report.render(rep, tmp_path)
    md = (tmp_path / "bench.md").read_text()
    assert "target p50 ≤ 1 ms: MET" in md and "| failed |" in md
    assert json.loads((tmp_path / "bench.json").read_text())["meta"]["mode"] == "quick"
    screen = report.summary_screen(rep)
    assert "boom" in screen and "[FAILED]" in screen and "[VERDICT]" not in screen
    assert rep["meta"]["machine_start"]["cpus"] == os.cpu_count()


def test_bench_only_replaces_its_results_in_the_last_report(tmp_path: Path) -> None:
    first = script(tmp_path, "first", "print('first: 1 ms')\n")
    second = script(tmp_path, "second", "print('second: 2 ms')\n")
    both = [
        Bench("first", "one", (), (), 1, 1, path=first),
        Bench("second", "two", (), (), 1, 1, path=second),
    ]
    report.render(report.run_all(both, quick=True, say=lambda _: None, outdir=tmp_path), tmp_path)
    second.write_text("print('second: 3 ms')\n")
    part = report.run_all(both[1:], quick=True, say=lambda _: None, outdir=tmp_path)
    merged = report.merge_into_last(part, tmp_path)
    assert list(merged["results"]) == ["first", "second"]
    assert "first: 1 ms" in merged["results"]["first"]["output"]
    assert "second: 3 ms" in merged["results"]["second"]["output"]
    assert merged["meta"]["updates"][0]["benches"] == ["second"]
    report.render(merged, tmp_path)
    assert "re-run since (`BENCH_ONLY`): second" in (tmp_path / "bench.md").read_text()
