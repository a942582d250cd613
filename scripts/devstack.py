"""`make run`: the whole stack on embedded defaults, in the foreground; Ctrl-C stops it all.

* a real redis-server (svckit.embedded_redis) on a free loopback port, with its append-only
  file under var/redis/ (DEVSTACK_REDIS_DIR; empty = keep nothing), so a restart keeps streams,
  idempotency keys and leases (`make clean` wipes it),
* the SQLite store, one file both services share (`var/data/store.sqlite3`, seeded from fixtures/
  by each service at start): S3 reads S4's `orders` and `strategy_events`, as both share one
  ArangoDB database in production,
* the market-data feeder (`python -m md_feeder`, /health on :8083): publishes `mkt:tick:*`,
  `mkt:depth:*` and `feat:last:*` from the simulator's steps (or, with a ccxt S4_EXCHANGE,
  from that venue's public books: MD_SOURCE follows S4_EXCHANGE unless set),
* S4 on :8082 with the in-process venue simulator, whose market steps it appends to
  `sim:market` for the feeder,
* S3 on :8081, emitting intents to `orders:intent` and to S4 over REST.

Ports and everything else follow the usual variables (S3_PORT, S4_PORT, MD_PORT, S3_*/S4_*/
MD_*). When S3_REDIS_ADDRESSES / S4_REDIS_ADDRESSES are set, no Redis is started and those are
used.

Stopping (Ctrl-C, SIGTERM, SIGHUP) goes in dependency order, each with a bounded grace period
(`DEVSTACK_STOP_GRACE_S`, default 20 s, then SIGKILL): S3 first (it publishes to S4), then S4
(it finishes the steps under way and publishes their events), then the feeder, then Redis last.
A terminal sends Ctrl-C to its whole foreground process group, so every child runs in a process
group of its own: otherwise Redis would die at the same moment as S4 and S4's last events would
be lost.
On Linux the children also get SIGTERM if this script dies without stopping them.

Bearer tokens: S3_API_TOKEN, S3_ADMIN_TOKEN and S4_API_TOKEN are taken from the environment
when set; otherwise each is read from var/tokens/<name> (DEVSTACK_TOKEN_DIR), or generated
there (32 random bytes, hex; file mode 0600, directory 0700) on first run, and the paths are
printed. S3 calls S4 with S4's token (S3_S4_API_TOKEN, unless set).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "libs" / "svckit" / "src"))

from svckit.embedded_redis import EmbeddedRedis  # noqa: E402

TOKENS = ("S3_API_TOKEN", "S3_ADMIN_TOKEN", "S4_API_TOKEN")


def resolve_tokens(env: dict[str, str], token_dir: Path) -> dict[str, Path]:
    """Fill the bearer tokens into `env`: from the environment if set, else from (or newly
    into) `token_dir`. Returns the files used, by variable (empty when all came from env)."""
    files: dict[str, Path] = {}
    for var in TOKENS:
        if env.get(var):
            continue
        token_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = token_dir / var.lower()
        if path.is_file() and path.read_text().strip():
            path.chmod(0o600)  # a copied or restored file may have come back world-readable
            env[var] = path.read_text().strip()
        else:
            token = secrets.token_hex(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(token + "\n")
            path.chmod(0o600)  # O_CREAT's mode is masked by the umask; be explicit
            env[var] = token
        files[var] = path
    env.setdefault("S3_S4_API_TOKEN", env["S4_API_TOKEN"])
    return files


def _child_setup() -> None:  # pragma: no cover - runs in the child, before exec
    # SIGTERM when the devstack dies without stopping us (PR_SET_PDEATHSIG): a child in a
    # process group of its own no longer gets the terminal's signals.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _stop(name: str, proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        print(f"devstack: {name} still running after {grace_s:.0f}s: killed", file=sys.stderr)
        proc.kill()
        proc.wait()
    print(f"devstack: {name} stopped (rc {proc.returncode})", flush=True)


def _wait_healthy(name: str, url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"devstack: {name} exited with {proc.returncode}", file=sys.stderr)
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    print(f"devstack: {name} not healthy after {timeout:.0f}s ({url})", file=sys.stderr)
    return False


def main() -> int:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    data_dir = Path(env.get("DEVSTACK_DATA_DIR", str(REPO / "var" / "data")))
    data_dir.mkdir(parents=True, exist_ok=True)
    redis: EmbeddedRedis | None = None
    addresses = env.get("S4_REDIS_ADDRESSES") or env.get("S3_REDIS_ADDRESSES")
    if not addresses:
        redis_dir = env.get("DEVSTACK_REDIS_DIR", str(REPO / "var" / "redis"))
        redis = EmbeddedRedis(data_dir=Path(redis_dir) if redis_dir else None).start()
        addresses = ",".join(redis.addresses)
        print(f"devstack: redis-server (embedded) on {addresses}", flush=True)
        kept = f"append-only file in {redis_dir}" if redis_dir else "nothing kept"
        print(f"devstack: redis persistence: {kept}", flush=True)
    for prefix in ("S3_", "S4_", "MD_"):
        env.setdefault(f"{prefix}REDIS_ADDRESSES", addresses)
        env.setdefault(f"{prefix}DATA_DIR", str(data_dir))
        env.setdefault(f"{prefix}FIXTURES_DIR", str(REPO / "fixtures"))
    # The feeder reads the venue S4 trades on: the simulator's steps, or the same ccxt venue.
    env.setdefault("MD_SOURCE", env.get("S4_EXCHANGE") or "sim")
    for var in ("TESTNET", "EXCHANGE_BASE_URL"):
        if env.get(f"S4_{var}"):
            env.setdefault(f"MD_{var}", env[f"S4_{var}"])
    if env.get("S4_SIM_SYMBOLS"):
        env.setdefault("MD_SYMBOLS", env["S4_SIM_SYMBOLS"])
    env.setdefault("S4_ROUTE_TABLE_PATH", str(REPO / "fixtures" / "route_table.json"))
    s3_port, s4_port = env.setdefault("S3_PORT", "8081"), env.setdefault("S4_PORT", "8082")
    md_port = env.setdefault("MD_PORT", "8083")
    env.setdefault("S3_S4_URL", f"http://127.0.0.1:{s4_port}")
    store = env.get("S4_DB_ARANGO_URI") or f"sqlite {data_dir / 'store.sqlite3'}"
    print(f"devstack: store {store}", flush=True)
    token_dir = Path(env.get("DEVSTACK_TOKEN_DIR", str(REPO / "var" / "tokens")))
    token_files = resolve_tokens(env, token_dir)
    for var in TOKENS:
        where = token_files.get(var, "the environment")
        print(f"devstack: {var} from {where}", flush=True)

    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    grace_s = float(env.get("DEVSTACK_STOP_GRACE_S", "20"))
    # How long each part may take to answer /health: a loaded machine (or a soak under
    # tracemalloc) needs more than the default minute.
    start_s = float(env.get("DEVSTACK_START_TIMEOUT_S", "60"))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    rc = 0
    try:
        # The feeder first: it reads sim:market from its tail, so it sees S4's first steps.
        for name, module, port in (
            ("md-feeder", "md_feeder", md_port),
            ("s4-router", "s4_router", s4_port),
            ("s3-strategy", "s3_strategy", s3_port),
        ):
            proc = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                cwd=REPO,
                process_group=0,
                preexec_fn=_child_setup if sys.platform == "linux" else None,
            )
            procs.append((name, proc))
            if not _wait_healthy(name, f"http://127.0.0.1:{port}/health", proc, start_s):
                return 1
            print(f"devstack: {name} listening on http://127.0.0.1:{port}", flush=True)
        s3_auth = (
            f"$(cat {token_files['S3_API_TOKEN']})"
            if "S3_API_TOKEN" in token_files
            else "$S3_API_TOKEN"
        )
        print(
            "devstack: ready. Try:\n"
            f"  curl -s localhost:{s3_port}/health\n"
            f"  curl -s -X POST localhost:{s3_port}/decide -H 'content-type: application/json'"
            f' -H "Authorization: Bearer {s3_auth}"'
            ' -d \'{"symbol":"BTCUSDT","dry_run":true}\'\n'
            "devstack: Ctrl-C stops everything.",
            flush=True,
        )
        while not stopping:
            for name, proc in procs:
                if proc.poll() is not None:
                    print(f"devstack: {name} exited with {proc.returncode}", file=sys.stderr)
                    rc = 1
                    stopping = True
            time.sleep(0.2)
    finally:
        # Started the feeder, S4, then S3: stopped S3, S4, the feeder, one at a time, then Redis.
        for name, proc in reversed(procs):
            _stop(name, proc, grace_s)
        if redis is not None:
            redis.stop()
            print("devstack: redis-server stopped", flush=True)
        print("devstack: stopped", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
