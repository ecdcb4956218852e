"""The faults a chaos run injects, each a function that returns a note on what it did."""

from __future__ import annotations

import signal
import subprocess
import time

import psutil

from . import stack

STOP_SECONDS = 8.0  # longer than the app's lock and idle-in-transaction timeouts


def _random_worker(servers, rng) -> psutil.Process | None:
    workers = [worker for server in servers for worker in server.workers()]
    return rng.choice(workers) if workers else None


def worker_kill(run, rng):
    """SIGKILL a gunicorn worker in the middle of a request; its master starts a new one."""
    worker = _busy_worker(run.servers, rng) or _random_worker(run.servers, rng)
    if worker is None:
        return "no worker found"
    busy = "client connection open" if _serving(worker) else "idle"
    worker.send_signal(signal.SIGKILL)
    return f"SIGKILL worker {worker.pid} ({busy})"


def _busy_worker(servers, rng, tries=50) -> psutil.Process | None:
    """A worker with a client's TCP connection open, i.e. serving a request right now."""
    for _ in range(tries):
        workers = [worker for server in servers for worker in server.workers()]
        busy = [worker for worker in workers if _serving(worker)]
        if busy:
            return rng.choice(busy)
        time.sleep(0.01)
    return None


def _serving(worker) -> bool:
    try:
        return any(c.status == psutil.CONN_ESTABLISHED for c in worker.net_connections("tcp"))
    except psutil.Error:
        return False


def pg_terminate(run, rng):
    """pg_terminate_backend on every connection of the app's database but our own."""
    with stack.connect(run.database_url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    return f"terminated {killed} connections"


def worker_stop(run, rng):
    """SIGSTOP a worker for longer than the lock timeout, then SIGCONT: a frozen process that
    holds a row lock must not block everyone else on that account for as long as it sleeps.

    A worker spends most of its time outside a transaction, so this tries several workers
    (SIGCONT at once when it missed) until one is caught with a transaction open.
    """
    for _ in range(40):
        worker = _random_worker(run.servers, rng)
        if worker is None:
            return "no worker found"
        worker.send_signal(signal.SIGSTOP)
        time.sleep(0.05)
        if _open_transactions(run) or _ == 39:
            break
        worker.send_signal(signal.SIGCONT)
    caught = "with a transaction open" if _open_transactions(run) else "outside a transaction"
    time.sleep(STOP_SECONDS)
    try:
        worker.send_signal(signal.SIGCONT)
    except psutil.NoSuchProcess:
        return f"SIGSTOP worker {worker.pid}: gone before SIGCONT"
    return f"SIGSTOP worker {worker.pid} ({caught}) for {STOP_SECONDS:.0f} s, then SIGCONT"


def _open_transactions(run) -> int:
    """Sessions idle inside a transaction: a client (our stopped worker) holding it open."""
    with stack.connect(run.database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction' AND now() - state_change > interval '30 ms'"
        ).fetchone()[0]


def pg_restart(run, rng):
    """A fast restart of the embedded PostgreSQL: every connection and transaction is cut."""
    if not run.embedded:
        return "skipped: DATABASE_URL points to a server this run does not manage"
    began = time.monotonic()
    subprocess.run(
        [stack.PYTHON, "-m", "jointbank.embedded_db", "restart"],
        cwd=stack.ROOT,
        check=True,
        capture_output=True,
    )
    return f"PostgreSQL restarted in {time.monotonic() - began:.1f} s"


FAULTS = {
    "worker-kill": worker_kill,
    "pg-terminate": pg_terminate,
    "worker-stop": worker_stop,
    "pg-restart": pg_restart,
}
