"""The decision API under load: gunicorn on loopback, a SQLite file, N concurrent clients; one command.

    .venv/bin/python bench/api.py [--clients 16] [--requests 4000] [--duration 60] [--json out.json] [--quick]

What one run does:

1. builds a fresh SQLite database in a temporary folder (migrations, the baseline rules as version 1, one API
   key with the `decide` scope);
2. measures the engine alone on the same cases, in this process: `decide()` on the compiled project-finance
   policy, one thread (what one core decides, with nothing else running);
3. the server floor: the same gunicorn command serving bench/floor_app.py (reads the request, answers fixed bytes
   as large as a decision), driven by the same clients: what HTTP alone costs on this machine in this run;
4. starts gunicorn (`web:create_app()`, gthread workers) on a free loopback port, warms every worker up, then
   drives `--clients` concurrent clients (keep-alive connections in an event loop, prepared requests) until
   `--requests` decisions are answered or `--duration` seconds have passed, whichever comes first;
5. reports decisions/s and p50/p99 latency in ms as the clients saw them: JSON in, auth, validation, the
   engine, the audit record committed (fsync'd: WAL with synchronous=FULL) and the answer out; the
   engine-only rate of step 2, and the ratio between them; the floor of step 3 and the CPU the application adds
   above it; checks that every answered decision is in the audit trail;
6. stops gunicorn.

The targets (issue: the decision API): p99 <= 25 ms at 16 clients on 2 cores, and HTTP throughput at least half
of the engine-only rate. Clients run on the same 2 cores as the server, so the figures include their cost.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import platform
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# Run as `python bench/api.py`, this folder is sys.path[0] and bench/engine.py would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(REPO))

AS_OF = "2026-06-30"
POLICY = "project-finance"
TARGET_P99_MS = 25.0
TARGET_RATIO = 0.5


def bench_engine_module() -> Any:
    """bench/engine.py, loaded by path (its case generator is the engine benchmark's, so the cases are comparable)."""
    spec = importlib.util.spec_from_file_location("credo_bench_engine", BENCH / "engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def cases(n: int) -> list[dict[str, Any]]:
    return list(bench_engine_module().pf_cases(n))


# --- the database ------------------------------------------------------------------------------------------------


def make_database(folder: Path) -> tuple[str, str]:
    """A migrated SQLite file with the baseline rules active and a `decide` key; returns (url, token)."""
    import web.models  # noqa: F401 - entities before the bind
    from audit.db import bind_database, unbind, upgrade
    from engine.library import DEFAULT_RULES
    from web.api.auth import create_key
    from web.services.rules import import_documents

    url = f"sqlite:///{folder / 'credo.db'}"
    upgrade(url)
    bind_database(url)
    try:
        import_documents(list(DEFAULT_RULES))
        token = create_key("bench-client", ["decide"])
    finally:
        unbind()
    return url, token


def recorded(url: str) -> int:
    from pony import orm

    import web.models  # noqa: F401
    from audit.db import bind_database, db, unbind

    bind_database(url)
    try:
        with orm.db_session:
            return int(db.select("SELECT COUNT(*) FROM decision_record")[0])
    finally:
        unbind()


# --- the engine alone ------------------------------------------------------------------------------------------------


def engine_only(items: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    """Decisions/s of decide() alone, one thread; the cases cycle until `seconds` (at least one pass)."""
    import datetime as dt

    from engine.evaluate import decide
    from engine.library import Library

    unit = Library.load().compile_policy(POLICY, dt.date.fromisoformat(AS_OF))
    day = dt.date.fromisoformat(AS_OF)
    answers = [decide(unit, case, day) for case in items[:50]]  # the first builds the network: not in the rate
    # The size of an answer (plus decision_id), for the server floor's fixed answer.
    answer_bytes = 40 + sum(len(json.dumps(a, separators=(",", ":"), default=str)) for a in answers) // len(answers)
    done = 0
    times: list[int] = []
    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    while done < len(items) or time.perf_counter() < deadline:
        case = items[done % len(items)]
        t0 = time.perf_counter_ns()
        decide(unit, case, day)
        times.append(time.perf_counter_ns() - t0)
        done += 1
        if done >= 20 * len(items):
            break
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    times.sort()
    return {
        "decisions": done,
        "rate": done / wall,
        "cpu_ms_per_decision": 1000 * cpu / done,
        "p50_ms": times[len(times) // 2] / 1e6,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] / 1e6,
        "answer_bytes": answer_bytes,
    }


# --- gunicorn ------------------------------------------------------------------------------------------------------


def audit_env(folder: Path) -> dict[str, str]:
    """The audit key and checkpoints of this run's own: never the repository's instance/ files."""
    return {
        "CREDO_AUDIT_KEY_FILE": str(folder / "audit.key"),
        "CREDO_AUDIT_CHECKPOINT": str(folder / "checkpoints.jsonl"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gunicorn(
    url: str, port: int, workers: int, threads: int, log: Path, floor_bytes: int | None = None
) -> subprocess.Popen[bytes]:
    """Credo (`web:create_app()`), or with `floor_bytes` the server floor (bench/floor_app.py), same settings."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--keep-alive",
        "30",
        # Each worker its own listening socket, and the kernel spreads connections over them. With one shared
        # socket the first idle worker takes every connection it can: 16 keep-alive clients split 15/1 as
        # often as 8/8, and one GIL then serves most of the load.
        "--reuse-port",
        "--log-level",
        "warning",
        *(["--pythonpath", str(BENCH), "floor_app:app"] if floor_bytes is not None else ["web:create_app()"]),
    ]
    env = {**os.environ, "DATABASE_URL": url, "CREDO_LOG_LEVEL": "WARNING", **audit_env(log.parent)}
    if floor_bytes is not None:
        env["CREDO_BENCH_FLOOR_BYTES"] = str(floor_bytes)
    handle = log.open("wb")
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)


def wait_healthy(port: int, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not become healthy")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def worker_pids(master: int) -> list[int]:
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc; 0 elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


# --- clients -------------------------------------------------------------------------------------------------------


def request_bytes(port: int, token: str, body: bytes) -> bytes:
    head = (
        f"POST /api/v1/decisions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Connection:
    """One keep-alive client: sends a request, reads its whole answer, sends the next."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buffer = b""
        self.started = 0

    def answer(self) -> int | None:
        """The status once the whole answer is in the buffer (which is then emptied), else None."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return None
        self.buffer = self.buffer[end + 4 + length :]
        return int(head[0].split()[1])


def client_process(args: tuple[int, int, list[bytes], str, int, float, float, int]) -> dict[str, Any]:
    """`connections` keep-alive clients in one process, sharing `budget` requests, until the deadline.

    One event loop over non-blocking sockets with the requests prepared in advance (as wrk does): the clients
    share the server's 2 cores, so the less CPU they take, the more of the machine measures the server.
    """
    port, connections, bodies, token, budget, start_at, deadline, offset = args
    requests = [request_bytes(port, token, body) for body in bodies]
    latencies: list[int] = []
    statuses: dict[int, int] = {}
    selector = selectors.DefaultSelector()
    clients = [_Connection(port) for _ in range(connections)]
    left = budget
    sent = offset
    first, last = float("inf"), 0.0

    def send(client: _Connection) -> bool:
        nonlocal left, sent, first
        if left <= 0 or time.perf_counter() >= deadline:
            return False
        left -= 1
        payload = requests[sent % len(requests)]
        sent += 7919
        client.started = time.perf_counter_ns()
        first = min(first, client.started / 1e9)
        client.sock.sendall(payload)  # a few KB: fits the socket buffer of an idle keep-alive connection
        return True

    while time.perf_counter() < start_at:  # every process starts together
        time.sleep(0.001)
    cpu = time.process_time()
    for client in clients:
        if send(client):
            selector.register(client.sock, selectors.EVENT_READ, client)
    while selector.get_map():
        for key, _ in selector.select(timeout=30):
            client = key.data
            chunk = client.sock.recv(262144)
            if not chunk:
                raise ConnectionError("the server closed a keep-alive connection")
            client.buffer += chunk
            status = client.answer()
            if status is None:
                continue
            done = time.perf_counter_ns()
            last = max(last, done / 1e9)
            latencies.append(done - client.started)
            statuses[status] = statuses.get(status, 0) + 1
            if not send(client):
                selector.unregister(client.sock)
    for client in clients:
        client.sock.close()
    return {
        "latencies": latencies,
        "statuses": statuses,
        "first": first,
        "last": last,
        "cpu_s": time.process_time() - cpu,
    }


def drive(
    port: int, token: str, bodies: list[bytes], clients: int, processes: int, requests: int, duration: float
) -> dict[str, Any]:
    processes = max(1, min(processes, clients))
    per_process = [clients // processes + (1 if n < clients % processes else 0) for n in range(processes)]
    budgets = [requests * p // clients for p in per_process]
    budgets[0] += requests - sum(budgets)
    context = multiprocessing.get_context("spawn")  # nothing of this process's engine state is inherited
    with context.Pool(processes) as pool:
        start_at = time.perf_counter() + 1.0  # perf_counter is system-wide (CLOCK_MONOTONIC) on Linux
        deadline = start_at + duration
        jobs = [
            (port, per_process[n], bodies, token, budgets[n], start_at, deadline, n * 104729) for n in range(processes)
        ]
        results = pool.map(client_process, jobs)
    latencies = sorted(ms for r in results for ms in r["latencies"])
    statuses: dict[int, int] = {}
    for r in results:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    wall = max(r["last"] for r in results) - min(r["first"] for r in results)
    ok = statuses.get(200, 0)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))] / 1e6 if latencies else float("nan")

    return {
        "clients": clients,
        "client_processes": processes,
        "answered": len(latencies),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": wall,
        "rate": ok / wall if wall > 0 else 0.0,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) / 1e6 if latencies else float("nan"),
        "client_cpu_ms_per_request": 1000 * sum(r["cpu_s"] for r in results) / max(len(latencies), 1),
    }


def measure_floor(
    args: argparse.Namespace, url: str, token: str, bodies: list[bytes], answer_bytes: int, folder: Path
) -> dict[str, Any]:
    """The load run against bench/floor_app.py: what HTTP alone costs here, now."""
    port = free_port()
    process = start_gunicorn(url, port, args.workers, args.threads, folder / "floor.log", floor_bytes=answer_bytes)
    try:
        wait_healthy(port, process)
        drive(port, token, bodies, min(args.clients, 8), 1, args.warmup, 60.0)
        pids = worker_pids(process.pid)
        server_cpu = cpu_seconds(pids)
        floor = drive(port, token, bodies, args.clients, args.client_processes, args.requests, args.duration)
        floor["server_cpu_ms_per_request"] = 1000 * (cpu_seconds(pids) - server_cpu) / max(floor["answered"], 1)
        floor["answer_bytes"] = answer_bytes
        return floor
    finally:
        stop(process)


# --- the run -----------------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--requests", type=int, default=4000, help="decisions to ask for, at most (default 4000)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load, at most (default 60)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers (default: cores)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (default 8)")
    parser.add_argument("--client-processes", type=int, default=1, help="processes the clients run in (default 1)")
    parser.add_argument("--cases", type=int, default=500, help="distinct seeded cases (default 500)")
    parser.add_argument("--warmup", type=int, default=200, help="decisions before measuring (default 200)")
    parser.add_argument("--engine-seconds", type=float, default=5.0, help="time for the engine-only rate")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, gunicorn log)")
    parser.add_argument("--quick", action="store_true", help="a few seconds: what the smoke test runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.duration, args.cases, args.warmup, args.engine_seconds = 300, 15.0, 60, 40, 1.0

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    folder = Path(tempfile.mkdtemp(prefix="credo-bench-api-"))
    os.environ.update(audit_env(folder))  # this process writes no record, but keep it off instance/ all the same
    os.environ.pop("CREDO_AUDIT_KEY", None)
    process: subprocess.Popen[bytes] | None = None
    try:
        log(f"database: {folder / 'credo.db'}")
        url, token = make_database(folder)
        items = cases(args.cases)
        bodies = [json.dumps({"policy": POLICY, "case": c, "as_of": AS_OF}).encode() for c in items]

        log(f"engine only: decide() on {len(items)} cases, one thread, {args.engine_seconds:.0f} s")
        engine = engine_only(items, args.engine_seconds)

        log(f"server floor: the same gunicorn answering {engine['answer_bytes']} fixed bytes, the same clients")
        floor = measure_floor(args, url, token, bodies, int(engine["answer_bytes"]), folder)

        port = free_port()
        log(f"gunicorn: {args.workers} workers x {args.threads} threads on 127.0.0.1:{port}")
        process = start_gunicorn(url, port, args.workers, args.threads, folder / "gunicorn.log")
        wait_healthy(port, process)
        log(f"warm-up: {args.warmup} decisions")
        warm = drive(port, token, bodies, min(args.clients, 8), 1, args.warmup, 60.0)
        if warm["ok"] != warm["answered"]:
            raise SystemExit(f"warm-up failed: {warm['statuses']} (see {folder / 'gunicorn.log'})")
        log(f"load: {args.clients} clients, up to {args.requests} decisions or {args.duration:.0f} s")
        pids = worker_pids(process.pid)
        server_cpu = cpu_seconds(pids)
        load = drive(port, token, bodies, args.clients, args.client_processes, args.requests, args.duration)
        server_cpu = cpu_seconds(pids) - server_cpu
        load["server_cpu_ms_per_decision"] = 1000 * server_cpu / max(load["answered"], 1)
        stop(process)
        process = None
        stored = recorded(url)
        expected = warm["ok"] + load["ok"]
    finally:
        if process is not None:
            stop(process)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    ratio = load["rate"] / engine["rate"] if engine["rate"] else 0.0
    server_ms = load.get("server_cpu_ms_per_decision", 0.0)
    engine_share = engine["cpu_ms_per_decision"] / server_ms if server_ms else 0.0
    floor_ratio = floor["rate"] / engine["rate"] if engine["rate"] else 0.0
    app_ms = server_ms - floor["server_cpu_ms_per_request"]
    # If the application cost nothing but the engine: every core busy with the floor, the clients and decide().
    per_decision_ms = (
        floor["server_cpu_ms_per_request"] + floor["client_cpu_ms_per_request"] + engine["cpu_ms_per_decision"]
    )
    ceiling = (os.cpu_count() or 1) * 1000 / per_decision_ms if per_decision_ms > 0 else 0.0
    figures = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "config": {
            "clients": args.clients,
            "client_processes": args.client_processes,
            "workers": args.workers,
            "threads": args.threads,
            "cases": len(items),
            "policy": POLICY,
            "database": "SQLite file (WAL, synchronous=FULL)",
        },
        "http": load,
        "engine_only": engine,
        "server_floor": floor,
        "ceiling_engine_only_app": {"rate": ceiling, "ratio": ceiling / engine["rate"] if engine["rate"] else 0.0},
        "ratio_http_to_engine": ratio,
        "engine_share_of_server_cpu": engine_share,
        "audit": {"answered_ok": expected, "records": stored, "every_answer_recorded": stored == expected},
        "targets": {
            "p99_ms": {"target": TARGET_P99_MS, "value": load["p99_ms"], "ok": load["p99_ms"] <= TARGET_P99_MS},
            "ratio": {"target": TARGET_RATIO, "value": ratio, "ok": ratio >= TARGET_RATIO},
        },
    }
    errors = load["answered"] - load["ok"]
    print(
        f"Credo decision API: {POLICY}, {args.clients} clients, {args.workers} gunicorn workers x {args.threads}"
        f" threads, {os.cpu_count()} cores (clients share them)"
    )
    print(
        f"  HTTP (audit write included): {load['rate']:8.1f} decisions/s   p50 {load['p50_ms']:6.2f} ms   "
        f"p90 {load['p90_ms']:6.2f} ms   p99 {load['p99_ms']:6.2f} ms   max {load['max_ms']:6.1f} ms"
    )
    print(f"    {load['ok']} answered 200 in {load['wall_s']:.1f} s; non-200: {errors} {load['statuses']}")
    print(
        f"  engine only (one thread):    {engine['rate']:8.1f} decisions/s   p50 {engine['p50_ms']:6.2f} ms   "
        f"p99 {engine['p99_ms']:6.2f} ms"
    )
    print(
        f"  server floor (fixed answer): {floor['rate']:8.1f} requests/s    p50 {floor['p50_ms']:6.2f} ms   "
        f"p99 {floor['p99_ms']:6.2f} ms   (gunicorn alone, {floor['answer_bytes']} bytes out)"
    )
    print(f"  HTTP / engine-only:          {ratio:8.2f}   (server floor / engine-only: {floor_ratio:.2f})")
    print(
        f"  CPU per decision: server {server_ms:.2f} ms (gunicorn workers), of which the engine's share "
        f"{engine_share:.0%} ({engine['cpu_ms_per_decision']:.2f} ms); "
        f"clients {load['client_cpu_ms_per_request']:.2f} ms"
    )
    print(
        f"  CPU per request of the server floor: {floor['server_cpu_ms_per_request']:.2f} ms; above it the application"
        f" (Flask, auth, validation, engine, audit record) costs {app_ms:.2f} ms per decision"
    )
    print(
        f"  ceiling if the application were decide() alone: ~{ceiling:.0f} decisions/s, "
        f"{figures['ceiling_engine_only_app']['ratio']:.2f} x engine-only (an estimate: floor, clients and engine "
        "CPU filling every core)"
    )
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  machine load (1 min) after the run: {load1:.1f} on {os.cpu_count()} cores")
    print(
        f"  audit trail: {stored} records for {expected} decisions answered"
        f" ({'every answer recorded' if stored == expected else 'MISMATCH'})"
    )
    print("Targets:")
    print(
        f"  p99 <= {TARGET_P99_MS:.0f} ms at {args.clients} clients: {load['p99_ms']:.2f} ms "
        f"{verdict(figures['targets']['p99_ms']['ok'])}"
    )
    print(f"  throughput >= {TARGET_RATIO:.1f} x engine-only: {ratio:.2f} {verdict(figures['targets']['ratio']['ok'])}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0 if errors == 0 and stored == expected else 1


if __name__ == "__main__":
    sys.exit(main())
