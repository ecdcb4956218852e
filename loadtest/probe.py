"""Per-request CPU time, database round trips and row-lock windows, measured inside gunicorn's
workers for `make bench` (a gunicorn config file: `gunicorn -c python:loadtest.probe`).

The same hooks wrap every app the bench serves (the real one, the naive one, the bare ones), so
their rows stay comparable; they cost a few microseconds per request (a clock read, a counter per
statement). Nothing here is imported by the app or reachable from a URL.

Per request (gunicorn's pre_request/post_request hooks, in the worker's thread):

- `cpu_ms`: `time.thread_time()` spent from the request arriving to the response written: the
  thread's own CPU, what `time.process_time()` measures in a sync worker, and still right in a
  threaded (gthread) worker, whose other threads' CPU the process clock would add in.
- `queries`: statements Django sends through its cursor; `round_trips` adds the ones it sends
  without one: BEGIN and COMMIT/ROLLBACK of each transaction, and the connection health check
  (`SELECT 1`, CONN_HEALTH_CHECKS).
- The row-lock window of each transaction that locks an account: from the statement that takes
  the row lock returning (an explicit `SELECT … FOR [NO KEY] UPDATE`, or for a path with no
  explicit lock its first `UPDATE accounts_account`) to COMMIT returning (an on_commit
  callback runs right after it). `lock_wait_ms` is how long that statement took, waiting for
  the lock included.

Each worker writes what it measured to `$BENCH_PROBE_DIR/<pid>.json` when it exits, and the bench
reads them once the server has stopped.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import defaultdict
from pathlib import Path

ROUTES = [
    (re.compile(r"^/accounts/\d+/deposit/$"), "deposit"),
    (re.compile(r"^/accounts/\d+/withdraw/$"), "withdraw"),
    (re.compile(r"^/accounts/\d+/balance/$"), "poll"),
    (re.compile(r"^/accounts/\d+/history/$"), "history page"),
    (re.compile(r"^/accounts/\d+/$"), "account page"),
]
LOCKING = re.compile(r"\bFOR (NO KEY )?UPDATE\b|^UPDATE \"accounts_account\"")

# (route, status) -> {"cpu_ms": [...], "queries": [...], "round_trips": [...]}
requests: dict = defaultdict(lambda: defaultdict(list))
windows: dict = defaultdict(list)  # route -> [(lock_wait_ms, window_ms), ...]


class _Request(threading.local):
    """What the current thread's request has done so far (reset by pre_request)."""

    queries = extra = 0
    locked = False
    windows: list = []
    cpu = 0.0


local = _Request()


def _route(path: str) -> str:
    for pattern, name in ROUTES:
        if pattern.match(path):
            return name
    return path


def _watch(connection) -> None:
    """Count this thread's statements and transactions, once per connection object (Django
    keeps one per thread and reuses it across reconnects)."""
    if getattr(connection, "_bench_probe", False):
        return
    connection._bench_probe = True

    def counting(execute, sql, params, many, context):
        started = time.perf_counter()
        result = execute(sql, params, many, context)
        local.queries += 1
        if connection.in_atomic_block and not local.locked and LOCKING.search(sql):
            local.locked = True
            granted = time.perf_counter()
            wait_ms = (granted - started) * 1000
            connection.on_commit(
                lambda: local.windows.append((wait_ms, (time.perf_counter() - granted) * 1000))
            )
        return result

    connection.execute_wrappers.append(counting)
    for name in ("_commit", "_rollback", "is_usable"):
        original = getattr(connection, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            local.extra += 2 if _name != "is_usable" else 1  # BEGIN + COMMIT, or SELECT 1
            if _name != "is_usable":
                local.locked = False
            return _original(*args, **kwargs)

        setattr(connection, name, counted)


def pre_request(worker, req):
    from django.db import connection

    _watch(connection)
    local.queries, local.extra, local.locked, local.windows = 0, 0, False, []
    local.cpu = time.thread_time()


def post_request(worker, req, environ, resp):
    cpu_ms = (time.thread_time() - local.cpu) * 1000
    route = _route(req.path)
    sample = requests[(route, getattr(resp, "status_code", None))]
    sample["cpu_ms"].append(cpu_ms)
    sample["queries"].append(local.queries)
    sample["round_trips"].append(local.queries + local.extra)
    windows[route].extend(local.windows)


def worker_exit(server, worker):
    folder = os.environ.get("BENCH_PROBE_DIR")
    if not folder:
        return
    data = {
        "requests": [
            {"route": route, "status": status, **sample}
            for (route, status), sample in requests.items()
        ],
        "windows": dict(windows),
    }
    Path(folder, f"{os.getpid()}.json").write_text(json.dumps(data))
