"""`make bench`: run every benchmark under tests/bench/ and write one report.

    make bench                                   # the full run (≲ 15 min on 2 cores)
    make bench BENCH_QUICK=1                     # a short run: fewer samples, same benches
    make bench BENCH_ONLY=tick_to_trade,s4_latency
    .venv/bin/python -m tests.bench.report --from-json reports/bench.json   # re-render only

Each benchmark runs as its own process (`python tests/bench/bench_<name>.py …`), one after the
other, so none disturbs another's figures. Those with a `run(...) -> dict` are called with
`--json FILE` and their figures are read back as data; the others (not yet converted) have their
printed output carried into the report as it is. Every bench's full output goes to
`reports/logs/<name>.log`.

While it runs, the terminal gets one line per benchmark as it starts (its expected duration and
the ETA of the whole run, from the last report's timings when there is one, else the estimates
below), the bench's own progress lines (at most one per 5 s), and a line when it ends; at the
end a one-screen summary: each headline figure beside its baseline from the same run, the
ratio, and the target's verdict.

Writes `reports/bench.md` (tables and plots, the machine and its load at start and end),
`reports/bench.json` (every figure, the samples behind the plots) and `reports/*.png`
(matplotlib, Agg backend). Exit status 1 when a benchmark failed to run (a missed target is a
figure, not a failure).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REPORTS = REPO / "reports"
PROGRESS = re.compile(r"^(progress: |\[\s*\d+/\d+\]|\s*\d+ min: )")
PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class Bench:
    name: str
    title: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    est_full_s: float  # on the 2-core VM, under other load
    est_quick_s: float
    data: bool = False  # has run() -> dict and --json
    path: Path | None = None  # default tests/bench/bench_<name>.py

    @property
    def script(self) -> Path:
        return self.path or REPO / "tests" / "bench" / f"bench_{self.name}.py"


# Order: the headline benches first, the long process-level ones last.
BENCHES: tuple[Bench, ...] = (
    Bench(
        "tick_to_trade",
        "Tick-to-trade: feature update → S3 → S4 → venue order",
        ("--n", "300", "--gap-ms", "250"),
        ("--n", "100", "--gap-ms", "250"),
        130,
        70,
        True,
    ),
    Bench(
        "s3_http",
        "S3 POST /decide beside a bare FastAPI route (HTTP, loopback)",
        ("--requests", "5000", "--curve", "1,2,4,8"),
        ("--requests", "1000", "--curve", "1,4"),
        80,
        40,
        True,
    ),
    Bench(
        "s4_latency",
        "S4 intake: orders:intent read → venue order",
        (
            "--n",
            "1500",
        ),
        (
            "--n",
            "400",
        ),
        45,
        20,
        True,
    ),
    Bench(
        "s4_slippage",
        "Slippage: Maker→Taker vs MARKET on recorded BTCUSDT",
        (
            "--n",
            "100",
        ),
        (
            "--n",
            "40",
        ),
        75,
        30,
        True,
    ),
    Bench("s4_twap", "TWAP schedule against the price (recorded BTCUSDT)", (), (), 15, 15, True),
    Bench(
        "chaos",
        "Chaos campaign (short seeded run)",
        ("--scenarios", "50", "--seed", "42"),
        ("--scenarios", "12", "--seed", "42"),
        130,
        75,
        True,
    ),
    Bench(
        "s3_engine",
        "S3 decision pipeline in process (no I/O)",
        ("--n", "15000"),
        ("--n", "3000"),
        25,
        10,
        True,
    ),
    Bench(
        "s3_service",
        "S3 DecisionService in process: group commit vs one transaction",
        ("--n", "3000", "--rounds", "1"),
        ("--n", "1500", "--rounds", "1"),
        50,
        30,
    ),
    Bench(
        "store_contention",
        "S3 decisions while S4 writes the same SQLite file",
        (
            "--n",
            "800",
        ),
        (
            "--n",
            "400",
        ),
        90,
        50,
    ),
    Bench(
        "config_reload",
        "Hot reload: lint/compile, propagation, activations under load",
        ("--activations", "30", "--load-activations", "200"),
        ("--activations", "10", "--load-activations", "40"),
        100,
        60,
    ),
    Bench(
        "feed_age",
        "Age of the features S3 reads",
        ("--seconds", "10"),
        ("--seconds", "5"),
        20,
        13,
        True,
    ),
    Bench(
        "live_decisions",
        "The default stack under one live decision per second",
        ("--minutes", "0.75"),
        ("--minutes", "0.25"),
        80,
        60,
    ),
    Bench(
        "s4_faults",
        "1,000 intents, clean and with 5 % venue faults",
        ("--n", "1000"),
        ("--n", "200"),
        60,
        15,
        True,
    ),
    Bench(
        "s4_oco",
        "SPOT OCO guardian and FUT brackets",
        ("--n", "200", "--fut", "60"),
        ("--n", "60", "--fut", "20"),
        30,
        11,
    ),
    Bench(
        "s4_weight",
        "S4 request weight: protections, published book",
        ("--orders", "200"),
        ("--orders", "80"),
        30,
        17,
    ),
    Bench(
        "s4_replicas",
        "S4 replicas on real processes, with and without faults",
        ("--replicas", "2", "--concurrency", "10", "--faults", "both"),
        ("--replicas", "1", "--concurrency", "10", "--faults", "off", "--no-weight"),
        120,
        36,
    ),
    Bench(
        "venue",
        "Venue simulator: matching, facade round trips through ccxt",
        ("--limit-orders", "5000", "--market-orders", "2500", "--pairs", "100"),
        ("--limit-orders", "2000", "--market-orders", "1000", "--pairs", "50", "--pings", "100"),
        50,
        43,
    ),
)


def fmt_s(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def previous_timings(outdir: Path, mode: str) -> dict[str, float]:
    """Seconds per bench from the last report of the same mode (better ETAs than guesses)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        old = json.loads((outdir / "bench.json").read_text())
        if old["meta"]["mode"] == mode:
            return {k: float(v["seconds"]) for k, v in old["results"].items() if "seconds" in v}
    return {}


# ---- running ----------------------------------------------------------------------------------
def run_one(
    b: Bench, args: tuple[str, ...], timeout_s: float, say: Callable[[str], None], outdir: Path
) -> dict[str, Any]:
    """Runs one bench in its own process group; its output goes to <outdir>/logs/<name>.log."""
    logs = outdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{b.name}.log"
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out_json = Path(tmp) / "out.json"
        cmd = [sys.executable, str(b.script), *args] + (["--json", str(out_json)] if b.data else [])
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        t0 = time.monotonic()
        lines: list[str] = []
        last_say = 0.0
        with log_path.open("w") as log:
            log.write("$ " + " ".join(cmd[1:]) + "\n")
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            assert proc.stdout is not None
            timed_out = threading.Event()

            def stop() -> None:  # the bench's own process group, by its id
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
                    return
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

            watchdog = threading.Timer(timeout_s, stop)
            watchdog.start()
            try:
                for line in proc.stdout:
                    log.write(line)
                    lines.append(line.rstrip("\n"))
                    now = time.monotonic()
                    if PROGRESS.match(line) and now - last_say >= PROGRESS_EVERY_S:
                        last_say = now
                        say(f"      {line.strip()[:110]}")
                rc = proc.wait()
            finally:
                watchdog.cancel()
                proc.stdout.close()
            if timed_out.is_set():
                log.write(f"\n[report] stopped after {timeout_s:.0f} s\n")
        seconds = time.monotonic() - t0
        result: dict[str, Any] = {
            "title": b.title,
            "args": list(args),
            "rc": rc,
            "seconds": round(seconds, 1),
            "status": "timeout" if timed_out.is_set() else ("ok" if rc == 0 else "failed"),
        }
        if b.data and out_json.exists():
            result["data"] = json.loads(out_json.read_text())
            if result["status"] == "failed":  # a verdict (e.g. a chaos violation), not a crash
                result["status"] = "ok"
        elif b.data:
            result["status"] = "failed" if result["status"] == "ok" else result["status"]
        # Printed figures (JSON log records of the services are left to the log file).
        result["output"] = "\n".join(ln for ln in lines if not ln.startswith("{"))[-12_000:]
        return classify(result)


def classify(r: dict[str, Any]) -> dict[str, Any]:
    """A bench that printed its figures and exited non-zero to say a target was missed ran
    fine ("verdict"); one that died with a traceback, or printed nothing, "failed"."""
    if r["status"] == "failed" and "data" not in r:
        out = r.get("output", "")
        if out.strip() and "Traceback (most recent call last)" not in out:
            r["status"] = "verdict"
    return r


def run_all(
    benches: list[Bench], quick: bool, say: Callable[[str], None], outdir: Path
) -> dict[str, Any]:
    mode = "quick" if quick else "full"
    prev = previous_timings(outdir, mode)
    est = {b.name: prev.get(b.name, b.est_quick_s if quick else b.est_full_s) for b in benches}
    meta: dict[str, Any] = {
        "mode": mode,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_rev(),
        "machine_start": machine(),
    }
    say(
        f"bench: {len(benches)} benchmarks, {mode} run, expected ~{fmt_s(sum(est.values()))} "
        f"(commit {meta['commit']}, {meta['machine_start']['cpus']} CPUs, load "
        f"{meta['machine_start']['loadavg_1_5_15'][0]:.1f}); logs in reports/logs/"
    )
    results: dict[str, Any] = {}
    t_start = time.monotonic()
    for i, b in enumerate(benches, 1):
        left = sum(est[x.name] for x in benches[i - 1 :])
        say(
            f"[{i}/{len(benches)}] {b.name}: {b.title} — expected ~{fmt_s(est[b.name])}, "
            f"ETA of the run ~{fmt_s(left)}"
        )
        args = b.quick if quick else b.full
        timeout = max(180.0, 4 * (b.est_quick_s if quick else b.est_full_s))
        started = datetime.now(UTC).isoformat(timespec="seconds")
        load = round(os.getloadavg()[0], 2)
        r = run_one(b, args, timeout, say, outdir)
        r["started"], r["loadavg_1m_at_start"] = started, load
        results[b.name] = r
        head = headline(b.name, r)
        printed = verdict_lines(r.get("output", ""))
        tail = head["text"] if head else (printed[0][:100] if printed else "")
        say(
            f"[{i}/{len(benches)}] {b.name}: {r['status']} in {fmt_s(r['seconds'])}"
            + (f" — {tail}" if tail else "")
        )
    meta["seconds"] = round(time.monotonic() - t_start, 1)
    meta["machine_end"] = machine()
    return {"meta": meta, "results": results}


# ---- headline figures -------------------------------------------------------------------------
def figures_of(name: str, r: dict[str, Any]) -> dict[str, Any] | None:
    """(figure, baseline, ratio, verdict) of a data bench, for the summary table."""
    d = r.get("data")
    if not d:
        return None
    if name == "tick_to_trade":
        t, f = d["tick_to_venue_order_ms"], d["baseline_redis_write_plus_http_hop_ms"]
        if not t.get("n"):
            return None
        return {
            "figure": f"tick→venue order p50 {t['p50']:.2f} / p99 {t['p99']:.2f} ms",
            "baseline": f"Redis write + HTTP hop p50 {f['p50']:.2f} / p99 {f['p99']:.2f} ms",
            "ratio": f"×{t['p50'] / f['p50']:.1f} / ×{t['p99'] / f['p99']:.1f}",
            "target": "p50 ≤ 2 ms, p99 ≤ 5 ms",
            "met": d["target"]["met"],
        }
    if name == "s3_http":
        c = d["curve"][0]
        return {
            "figure": f"/decide p50 {c['s3']['p50']:.2f} / p99 {c['s3']['p99']:.2f} ms "
            f"({c['conns']} conn)",
            "baseline": f"bare route p50 {c['bare']['p50']:.2f} / p99 {c['bare']['p99']:.2f} ms",
            "ratio": f"×{c['ratio_p50']:.1f} p50 (worst point ×"
            f"{max(p['ratio_p50'] for p in d['curve']):.1f}; bare + the decision's I/O ×"
            f"{c.get('floor_ratio_p50', float('nan')):.1f})",
            "target": "p50 ≤ 2× bare",
            "met": d["targets"]["issue11_p50_le_2x_bare"],
        }
    if name == "s4_latency":
        t, b = d["read_to_first_placement_ms"], d["baseline_redis_rtt_ms"]
        f = d["read_to_first_venue_request_ms"]
        return {
            "figure": f"read→first venue request p50 {f['p50']:.2f} / p99 {f['p99']:.2f} ms; "
            f"→placement p50 {t['p50']:.2f}",
            "baseline": f"Redis RTT p50 {b['p50']:.3f} ms",
            "ratio": f"×{t['p50'] / b['p50']:.0f} (placement)",
            "target": "p50 ≤ 1 ms, p99 ≤ 5 ms",
            "met": d["target"]["met"],
        }
    if name == "s4_slippage":
        mt, mk = d["arms"]["MAKER_TAKER"], d["arms"]["MARKET"]
        a, b = mt["slippage_bps"], mk["slippage_bps"]
        if not a.get("n") or not b.get("n"):
            return None
        return {
            "figure": f"Maker→Taker p50 {a['p50']:+.2f} bps (maker {mt['maker_fill_ratio']:.0%})",
            "baseline": f"MARKET p50 {b['p50']:+.2f} bps",
            "ratio": f"{a['p50'] - b['p50']:+.2f} bps",
            "target": "MT median < MARKET's",
            "met": d["target"]["met"],
        }
    if name == "s4_twap":
        f = d["figures_bps"]
        if f["twap_avg_vs_arrival"] is None:
            return None
        return {
            "figure": f"TWAP avg {f['twap_avg_vs_arrival']:+.2f} bps vs arrival "
            f"({f['twap_avg_vs_window_mid']:+.2f} vs window mid)",
            "baseline": f"MARKET at arrival {f['market_avg_vs_arrival']:+.2f} bps",
            "ratio": "—",
            "target": "fills the schedule",
            "met": d["twap"]["status"] == "FILLED",
        }
    if name == "s3_engine":
        r20, r1 = d["rules"]["20"], d["rules"]["1"]
        return {
            "figure": f"20 rules p50 {r20['p50']:.1f} / p99 {r20['p99']:.1f} µs; 200 rules p99 "
            f"{d['rules']['200']['p99']:.1f} µs",
            "baseline": f"1 rule p50 {r1['p50']:.1f} / p99 {r1['p99']:.1f} µs",
            "ratio": f"×{d['ratio_p50_to_1_rule']['20']:.1f} / ×"
            f"{d['ratio_p50_to_1_rule']['200']:.1f} p50",
            "target": "20: p50 ≤ 25, p99 ≤ 100 µs; 200: p99 ≤ 250 µs",
            "met": all(v["target"]["met"] for v in d["rules"].values() if v["target"]),
        }
    if name == "s4_faults":
        c, f = d["clean"], d["faulty"]
        return {
            "figure": f"{d['params']['fault_rate']:.0%} faults: OK {f['ok_ratio']:.2%}, dup "
            f"{f['duplicate_orders']}, overfill {f['overfills']}, lost {f['lost']}; submit p95 "
            f"{f['submit_ms']['p95']:.2f} ms",
            "baseline": f"clean: OK {c['ok_ratio']:.2%}, submit p95 {c['submit_ms']['p95']:.2f} ms",
            "ratio": f"×{f['submit_ms']['p95'] / c['submit_ms']['p95']:.2f} p95",
            "target": "clean ≥ 99.9 % OK, p95 ≤ 10 ms; faults 0 dup/overfill/lost",
            "met": d["target"]["met"],
        }
    if name == "feed_age":
        f, b = d["feat_last_age_ms"], d["baseline_sim_market_step_age_ms"]
        return {
            "figure": f"feat:last age p50 {f['p50']:.0f} / p95 {f['p95']:.0f} ms",
            "baseline": f"newest sim:market step p50 {b['p50']:.0f} / p95 {b['p95']:.0f} ms",
            "ratio": f"{d['added_by_feeder_p50_ms']:+.0f} ms p50 (feeder)",
            "target": "≤ S3_FEATURE_MAX_AGE_MS (5 s)",
            "met": f["max"] <= 5000,
        }
    if name == "chaos":
        return {
            "figure": f"{d['done']}/{d['params']['scenarios']} scenarios, {d['intents']} intents",
            "baseline": "—",
            "ratio": "—",
            "target": "0 violations",
            "met": d["target"]["met"],
            "extra": f"{len(d['violations'])} violations",
        }
    return None


def headline_text(h: dict[str, Any]) -> str:
    verdict = "MET" if h["met"] else "MISSED"
    base = f"; baseline {h['baseline']} ({h['ratio']})" if h["baseline"] != "—" else ""
    return f"{h['figure']}{base}; {h['target']}: {verdict}"


def headline(name: str, r: dict[str, Any]) -> dict[str, Any] | None:
    h = figures_of(name, r)
    if h is not None:
        h["text"] = headline_text(h)
    return h


def verdict_lines(output: str) -> list[str]:
    """The target/verdict lines a not-yet-converted bench printed."""
    pat = re.compile(r"target|verdict|MET\b|MISSED|ratio|×", re.I)
    return [ln.strip() for ln in output.splitlines() if pat.search(ln)][:6]


def summary_screen(report: dict[str, Any]) -> str:
    meta, res = report["meta"], report["results"]
    out = [
        "=" * 100,
        f"bench {meta['mode']} run, commit {meta['commit']}, {fmt_s(meta['seconds'])}, "
        f"load {meta['machine_start']['loadavg_1_5_15'][0]:.1f} → "
        f"{meta['machine_end']['loadavg_1_5_15'][0]:.1f} on {meta['machine_start']['cpus']} "
        "CPUs",
    ]
    for name, r in res.items():
        h = headline(name, r)
        status = "" if r["status"] in ("ok", "verdict") else f" [{r['status'].upper()}]"
        if h:
            mark = "MET   " if h["met"] else "MISSED"
            out.append(f"{mark} {name:<15}{status} {h['figure']}")
            if h["baseline"] != "—":
                out.append(f"{'':22}vs {h['baseline']}  ({h['ratio']}); target {h['target']}")
            else:
                out.append(
                    f"{'':22}target {h['target']}" + (f"; {h['extra']}" if "extra" in h else "")
                )
        else:
            vl = verdict_lines(r.get("output", ""))
            out.append(f"{'      '} {name:<15}{status} {vl[0][:76] if vl else '(see report)'}")
    out.append("report: reports/bench.md (plots reports/*.png, data reports/bench.json)")
    out.append("=" * 100)
    return "\n".join(out)


# ---- plots ------------------------------------------------------------------------------------
def plots(report: dict[str, Any], outdir: Path) -> dict[str, str]:
    """PNG per data bench; returns {bench: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: dict[str, str] = {}
    res = report["results"]

    def hist(ax: Any, series: list[tuple[str, list[float]]], xlabel: str, log: bool) -> None:
        import numpy as np

        # Log scale: positive values only (latencies). Linear: the signed range (slippage can
        # be negative: a maker fill inside the spread). The top 0.5 % land in the last bin.
        allv = [v for _, xs in series for v in xs if v > 0 or not log]
        if not allv:
            return
        hi = float(np.percentile(allv, 99.5))
        if log:
            lo = max(min(allv), 1e-3)
            bins = np.geomspace(lo, max(hi, lo * 1.01), 60)
        else:
            lo = min(allv)
            bins = np.linspace(lo, max(hi, lo + 1e-6), 60)
        for label, xs in series:
            ax.hist([min(max(x, lo), hi) for x in xs], bins=bins, alpha=0.55, label=label)
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        ax.legend(fontsize=8)

    def save(fig: Any, name: str, bench: str) -> None:
        fig.tight_layout()
        fig.savefig(outdir / name, dpi=110)
        plt.close(fig)
        made[bench] = name

    d = (res.get("tick_to_trade") or {}).get("data")
    if d and d["raw"]["tick_to_venue_order_ms"]:
        fig, ax = plt.subplots(figsize=(8, 4))
        hist(
            ax,
            [
                ("tick → venue order", d["raw"]["tick_to_venue_order_ms"]),
                ("baseline: Redis write + bare HTTP hop", d["raw"]["baseline_ms"]),
            ],
            "ms (log scale)",
            True,
        )
        for x, ls in ((2.0, "--"), (5.0, ":")):
            ax.axvline(x, color="k", ls=ls, lw=1)
        ax.set_title("Tick-to-trade (dashed: p50 target 2 ms, dotted: p99 target 5 ms)")
        save(fig, "tick_to_trade.png", "tick_to_trade")
    d = (res.get("s3_http") or {}).get("data")
    if d:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        c = d["curve"][0]
        hist(
            a1,
            [("S3 POST /decide", c["s3"]["lat_ms"]), ("bare FastAPI route", c["bare"]["lat_ms"])],
            f"ms (log scale), {c['conns']} connection",
            True,
        )
        a1.set_title("Latency, same auth + metrics")
        conns = [p["conns"] for p in d["curve"]]
        for key, label in (("s3", "S3 /decide"), ("bare", "bare route")):
            a2.plot(conns, [p[key]["p50"] for p in d["curve"]], "o-", label=f"{label} p50")
            a2.plot(conns, [p[key]["p99"] for p in d["curve"]], "x--", label=f"{label} p99")
        a2.set_xlabel("concurrent keep-alive connections")
        a2.set_ylabel("ms")
        a2.set_yscale("log")
        a2.legend(fontsize=8)
        a2.set_title("Latency vs load")
        save(fig, "s3_http.png", "s3_http")
    d = (res.get("s4_latency") or {}).get("data")
    if d:
        fig, ax = plt.subplots(figsize=(8, 4))
        hist(
            ax,
            [
                ("S4: read → first order placement", d["raw"]["read_to_first_placement_ms"]),
                ("baseline: one Redis round trip", d["raw"]["baseline_redis_rtt_ms"]),
            ],
            "ms (log scale)",
            True,
        )
        ax.set_title("S4 submit latency (MARKET, stream path, in-process venue)")
        save(fig, "s4_latency.png", "s4_latency")
    d = (res.get("s4_slippage") or {}).get("data")
    if d:
        fig, ax = plt.subplots(figsize=(8, 4))
        hist(
            ax,
            [
                (f"{k} (p50 {v['slippage_bps'].get('p50', 0):+.2f})", v["raw_bps"])
                for k, v in d["arms"].items()
            ],
            "slippage vs arrival mid, bps (adverse > 0)",
            False,
        )
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(f"Maker→Taker vs MARKET, recorded BTCUSDT, {d['params']['n']} intents each")
        save(fig, "s4_slippage.png", "s4_slippage")
    d = (res.get("s4_twap") or {}).get("data")
    if d and d["twap"]["mids"]:
        tw = d["twap"]
        t0 = tw["t_submit"]
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(
            [(t - t0) / 1000 for t, _ in tw["mids"]],
            [m for _, m in tw["mids"]],
            lw=0.8,
            label="venue mid",
        )
        for s in tw["plan"]:
            ax.axvline((s["due_ms"] - t0) / 1000, color="grey", ls=":", lw=0.8)
        if tw["fills"]:
            qmax = max(f["qty"] for f in tw["fills"])
            ax.scatter(
                [(f["ts"] - t0) / 1000 for f in tw["fills"]],
                [f["price"] for f in tw["fills"]],
                s=[20 + 80 * f["qty"] / qmax for f in tw["fills"]],
                color="C3",
                zorder=3,
                label="TWAP fills (size ∝ qty)",
            )
        if tw["avg_price"]:
            ax.axhline(tw["avg_price"], color="C3", ls="--", lw=0.8, label="TWAP average")
        mk = d["market_baseline"]
        if mk["avg_price"]:
            ax.axhline(mk["avg_price"], color="C2", ls="--", lw=0.8, label="MARKET at arrival")
        ax.set_xlabel("seconds since the intent (dotted: slice due times)")
        ax.set_ylabel("USDT")
        p = d["params"]
        ax.set_title(f"TWAP {p['side']} {p['qty']} BTC, {p['slices']} slices, {p['gap_ms']} ms gap")
        ax.legend(fontsize=8)
        save(fig, "s4_twap.png", "s4_twap")
    d = (res.get("chaos") or {}).get("data")
    if d:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
        oc = d["outcomes"]
        a1.bar(list(oc), list(oc.values()), color="C0")
        a1.set_title(f"Intent outcomes ({d['intents']} intents)")
        a1.tick_params(axis="x", rotation=30, labelsize=8)
        pf = {**d["process_faults"], "violations": len(d["violations"])}
        a2.bar(list(pf), list(pf.values()), color=["C1"] * (len(pf) - 1) + ["C3"])
        a2.set_title("Process faults injected / violations")
        a2.tick_params(axis="x", rotation=30, labelsize=8)
        save(fig, "chaos.png", "chaos")
    return made


# ---- markdown ---------------------------------------------------------------------------------
def ms_row(label: str, d: dict[str, Any]) -> str:
    if not d.get("n"):
        return f"| {label} | 0 | | | | |"
    return (
        f"| {label} | {d['n']} | {d['p50']:.3f} | {d.get('p90', float('nan')):.3f} | "
        f"{d['p99']:.3f} | {d['max']:.2f} |"
    )


MS_HEAD = "| | n | p50 ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|"


def section(name: str, r: dict[str, Any], png: str | None) -> list[str]:
    out = [f"## {r['title']}", ""]
    args = " ".join(r["args"])
    out.append(f"`tests/bench/bench_{name}.py {args}` — {r['status']}, {fmt_s(r['seconds'])}")
    out.append("")
    d = r.get("data")
    h = headline(name, r)
    if h:
        out += [f"**{'MET' if h['met'] else 'MISSED'}** — {h['text']}", ""]
    if d and name == "tick_to_trade":
        sp = d["split"]
        out += [
            MS_HEAD,
            ms_row("**tick → venue order**", d["tick_to_venue_order_ms"]),
            ms_row("tick → venue ack", d["tick_to_venue_ack_ms"]),
            ms_row("tick → /decide answered", d["tick_to_decide_answer_ms"]),
            ms_row(
                "tick → venue order, entries the liquidity probe did not hold",
                d.get("tick_to_venue_order_not_probe_delayed_ms", {}),
            ),
            ms_row("… tick → S4 intake (feature write, S3, hop)", sp["tick_to_s4_intake_ms"]),
            ms_row("… S4 intake → venue order", sp["s4_intake_to_venue_order_ms"]),
            ms_row(
                "baseline: Redis write + bare HTTP hop", d["baseline_redis_write_plus_http_hop_ms"]
            ),
            ms_row("baseline: Redis write alone", d["baseline_redis_write_ms"]),
            "",
            f"Decisions: {d['decisions']}; the intent reached S4 first by "
            f"{sp['first_path_into_s4']}; opened without a venue order: "
            f"{d['opened_without_venue_order']}; held back on purpose by S4's liquidity probe: "
            f"{d.get('probe_delayed', {}).get('parents', 'n/a')}.",
            "",
        ]
    elif d and name == "s3_http":
        out += [
            "| conns | endpoint | req/s | p50 ms | p90 ms | p99 ms | max ms | p50 ratio |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        rows = (("s3", "S3 /decide"), ("bare", "bare FastAPI"), ("floor_io", "bare + I/O"))
        for p in d["curve"]:
            for key, label in rows:
                x = p.get(key)
                if x is None:  # a report from before the I/O floor was measured
                    continue
                ratio = {"s3": p["ratio_p50"], "floor_io": p.get("floor_ratio_p50")}.get(key)
                ratio = f"×{ratio:.2f}" if ratio else ""
                out.append(
                    f"| {p['conns']} | {label} | {x['rps']:.0f} | {x['p50']:.3f} | "
                    f"{x['p90']:.3f} | {x['p99']:.3f} | {x['max']:.2f} | {ratio} |"
                )
        sp = d["spec_1000_serial"]
        out += [
            "",
            f"Spec bar (1000 serial decisions, P50 ≤ 200 ms, P95 ≤ 500 ms): P50 "
            f"{sp['p50']:.3f} ms, P95 {sp['p95']:.3f} ms. Signals persisted "
            f"{d['signals_persisted']} of {d['decisions_made']} decisions; "
            f"{d.get('signals_per_commit', 0):.2f} signals per commit. Targets: "
            f"{d['targets']}.",
            "",
            "`bare + I/O` is the bare route doing only the I/O every decision does, through S3's "
            "own adapters (the market-state read on Redis, the signal stored before the answer): "
            "its ratio is the floor of /decide's.",
            "",
        ]
    elif d and name == "s4_latency":
        out += [
            MS_HEAD,
            ms_row("read → first venue request", d["read_to_first_venue_request_ms"]),
            ms_row("**read → first order placement**", d["read_to_first_placement_ms"]),
            ms_row("baseline: one Redis round trip", d["baseline_redis_rtt_ms"]),
            ms_row("baseline: the order straight to the venue", d["baseline_bare_venue_order_ms"]),
            "",
        ]
    elif d and name == "s4_slippage":
        out += [
            "| arm | filled | maker fill ratio | p50 bps | p95 bps | mean bps | fees USDT |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for k, a in d["arms"].items():
            s = a["slippage_bps"]
            out.append(
                f"| {k} | {a['filled_complete']}/{a['intents']} | "
                f"{a['maker_fill_ratio']:.1%} | {s.get('p50', 0):+.3f} | "
                f"{s.get('p95', 0):+.3f} | {s.get('mean', 0):+.3f} | {a['fees_usdt']:.4f} |"
            )
        out.append("")
    elif d and name == "s4_twap":
        f = d["figures_bps"]
        out += ["| bps vs arrival mid (adverse > 0) | value |", "|---|---:|"]
        for k, v in f.items():
            out.append(f"| {k.replace('_', ' ')} | {'n/a' if v is None else f'{v:+.2f}'} |")
        out += [
            "",
            f"{d['fills']} fills over {d['duration_s']} s; status {d['twap']['status']}.",
            "",
        ]
    elif d and name == "s3_engine":
        out += [
            "| rules | n | p50 µs | p90 µs | p99 µs | max µs | p50 vs 1 rule | target |",
            "|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for k, v in d["rules"].items():
            t = v["target"]
            verdict = "baseline" if t is None else ("MET" if t["met"] else "MISSED")
            out.append(
                f"| {k} | {v['n']} | {v['p50']:.1f} | {v['p90']:.1f} | {v['p99']:.1f} | "
                f"{v['max']:.1f} | ×{d['ratio_p50_to_1_rule'][k]:.2f} | {verdict} |"
            )
        out.append("")
    elif d and name == "s4_faults":
        out += [
            "| run | OK | submit p50 ms | p95 ms | p99 ms | faults injected | ambiguous "
            "resolved | dup | overfill | fill mismatch | lost |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, v in (("clean", d["clean"]), ("with faults", d["faulty"])):
            sm = v["submit_ms"]
            out.append(
                f"| {label} | {v['ok_ratio']:.2%} | {sm['p50']:.2f} | {sm['p95']:.2f} | "
                f"{sm['p99']:.2f} | {sum(v['faults'].values())} | {v['ambiguous']} | "
                f"{v['duplicate_orders']} | {v['overfills']} | {v['fill_mismatches']} | "
                f"{v['lost']} |"
            )
        out.append("")
    elif d and name == "chaos":
        out += ["```", d["summary"], "```", ""]
    if png:
        out += [f"![{name}]({png})", ""]
    if not d:
        out += [
            "<details><summary>printed figures</summary>",
            "",
            "```",
            r.get("output", "").strip()[-6000:],
            "```",
            "",
            "</details>",
            "",
        ]
    return out


def write_markdown(report: dict[str, Any], pngs: dict[str, str], path: Path) -> None:
    meta, res = report["meta"], report["results"]
    ms, me = meta["machine_start"], meta["machine_end"]
    lines = [
        "# Benchmark report",
        "",
        f"Generated by `make bench{' BENCH_QUICK=1' if meta['mode'] == 'quick' else ''}` "
        f"({meta['mode']} run) on {meta['started']}, commit `{meta['commit']}`, in "
        f"{fmt_s(meta['seconds'])}.",
        "",
        f"Machine: {ms['cpus']} CPUs, Python {ms['python']}, {ms['platform']}. **Load average "
        f"(1/5/15 min) at start {ms['loadavg_1_5_15']}, at end {me['loadavg_1_5_15']}** — the "
        "machine is shared with other jobs, so absolute figures move from run to run; each "
        "figure sits beside a baseline measured in the same run (often interleaved sample by "
        "sample), and the ratio is what compares across runs.",
        "",
        "Reproduce: `make bench` (full; sized for ≲ 15 min on 2 idle cores) or "
        "`make bench BENCH_QUICK=1` (fewer samples); one benchmark: "
        "`make bench BENCH_ONLY=tick_to_trade`; every bench is also a script "
        "(`.venv/bin/python tests/bench/bench_<name>.py --help`). Raw figures: "
        "[bench.json](bench.json); each bench's output: `reports/logs/<name>.log` "
        "(not committed).",
        "",
        *(
            f"* re-run since (`BENCH_ONLY`): {', '.join(u['benches'])} on {u['started']} at commit "
            f"`{u['commit']}`, load {u['machine_start']['loadavg_1_5_15']}."
            for u in meta.get("updates", [])
        ),
        "",
        "## Summary",
        "",
        "| bench | figure | baseline (same run) | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res.items():
        h = headline(name, r)
        if h:
            lines.append(
                f"| [{name}](#{anchor(r['title'])}) | {h['figure']} | {h['baseline']} | "
                f"{h['ratio']} | {h['target']} | {'MET' if h['met'] else '**MISSED**'} |"
            )
        else:
            vl = verdict_lines(r.get("output", ""))
            text = "<br>".join(v.replace("|", "/") for v in vl[:3]) or "see below"
            lines.append(
                f"| [{name}](#{anchor(r['title'])}) | {text} | | | | "
                f"{'printed' if r['status'] in ('ok', 'verdict') else r['status']} |"
            )
    lines.append("")
    notes = report.get("notes")
    if notes:
        lines += [notes.strip(), ""]
    for name, r in res.items():
        lines += section(name, r, pngs.get(name))
    path.write_text("\n".join(lines) + "\n")


def anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


MAX_SAMPLES = 1500  # per list of samples kept in bench.json (plots need the shape, not all)


def round_floats(x: Any) -> Any:
    """4 decimals, and long sample lists thinned evenly by position (a sorted list keeps its
    quantiles), so that bench.json stays a few hundred kB."""
    if isinstance(x, float):
        return round(x, 4)
    if isinstance(x, dict):
        return {k: round_floats(v) for k, v in x.items()}
    if isinstance(x, list):
        if len(x) > MAX_SAMPLES and all(isinstance(v, float | int) for v in x):
            step = len(x) / MAX_SAMPLES
            x = [x[int(i * step)] for i in range(MAX_SAMPLES)]
        return [round_floats(v) for v in x]
    return x


def merge_into_last(part: dict[str, Any], outdir: Path) -> dict[str, Any]:
    """BENCH_ONLY: the benches just run replace theirs in the last report of the same mode
    (each result keeps when it ran and the load then); without one, the part stands alone."""
    try:
        last: dict[str, Any] = json.loads((outdir / "bench.json").read_text())
    except (OSError, ValueError):
        return part
    if last.get("meta", {}).get("mode") != part["meta"]["mode"]:
        return part
    order = [b.name for b in BENCHES]
    merged = {**last["results"], **part["results"]}
    last["results"] = {
        k: merged[k]
        for k in sorted(merged, key=lambda k: order.index(k) if k in order else len(order))
    }
    last["meta"].setdefault("updates", []).append(
        {
            "benches": list(part["results"]),
            "started": part["meta"]["started"],
            "commit": part["meta"]["commit"],
            "machine_start": part["meta"]["machine_start"],
        }
    )
    return last


def render(report: dict[str, Any], outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for r in report["results"].values():
        classify(r)
    pngs = plots(report, outdir)
    notes = outdir / "bench-notes.md"  # hand-written analysis kept beside the generated report
    if notes.exists():
        report["notes"] = notes.read_text()
    write_markdown(report, pngs, outdir / "bench.md")
    report.pop("notes", None)
    (outdir / "bench.json").write_text(json.dumps(round_floats(report), indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.bench.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0")
    )
    ap.add_argument(
        "--only",
        default=os.environ.get("BENCH_ONLY", ""),
        help="comma list of bench names (default: all)",
    )
    ap.add_argument("--out", type=Path, default=REPORTS)
    ap.add_argument("--from-json", type=Path, default=None, help="re-render a report only")
    a = ap.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    if a.from_json:
        report = json.loads(a.from_json.read_text())
        render(report, a.out)
        say(summary_screen(report))
        return 0
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = set(names) - {b.name for b in BENCHES}
    if unknown:
        ap.error(f"unknown bench(es) {sorted(unknown)}; known: {[b.name for b in BENCHES]}")
    benches = [b for b in BENCHES if not names or b.name in names]
    report = run_all(benches, a.quick, say, a.out)
    if names:
        report = merge_into_last(report, a.out)
    render(report, a.out)
    say(summary_screen(report))
    ran = ("ok", "verdict")
    return 0 if all(r["status"] in ran for r in report["results"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
