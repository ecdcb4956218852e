"""A fresh database and gunicorn instances, started and stopped around a run."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOG_DIR = ROOT / ".data" / "loadtest"
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def base_database_url() -> tuple[str, bool]:
    """The app's DATABASE_URL and whether it is the embedded server (which we may restart)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        embedded = _is_embedded(url)
        return url, embedded
    sys.path.insert(0, str(ROOT))
    from jointbank import embedded_db

    return embedded_db.start(), True


def _is_embedded(url: str) -> bool:
    sys.path.insert(0, str(ROOT))
    from jointbank import embedded_db

    host = dj_database_url.parse(url)["HOST"]
    return embedded_db.is_running() and host == str(embedded_db._postmaster().socket_dir)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def connect(url: str, **kwargs) -> psycopg.Connection:
    """A plain psycopg connection from a postgres:// URL (the host may be a socket directory)."""
    params = dj_database_url.parse(url)
    return psycopg.connect(
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        dbname=params["NAME"],
        **kwargs,
    )


def fresh_database(base_url: str, suffix: str = "loadtest") -> str:
    """Drop and re-create `<name>_<suffix>`, migrate it, and return its URL."""
    name = f"{urlsplit(base_url).path.lstrip('/')}_{suffix}"
    with connect(with_database(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(base_url, name)
    manage(url, "migrate", "--noinput", "-v0")
    manage(url, "createcachetable")  # the cache that rate limits count in (settings.CACHES)
    return url


# One key for every instance of a run, as in a real deployment: sessions signed by one instance
# must be valid on the other.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)


def app_env(database_url: str, **extra) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE": "0",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        # DEBUG off needs an e-mail setting; the run sends none worth delivering, and any
        # would land in the server logs under .data/loadtest/.
        "DJANGO_EMAIL_URL": "console://",
        "DJANGO_EMAIL_BACKEND": "",
        # The bench's fixtures open 1,000 accounts for one user (loadtest/fixtures.py).
        "JOINTBANK_MAX_ACCOUNTS_PER_USER": "1001",
        **extra,
    }


def manage(database_url: str, *args: str, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=app_env(database_url),
        check=True,
        **popen,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """One gunicorn instance (a master and `workers` workers, sync unless `options` say
    otherwise) on 127.0.0.1."""

    def __init__(
        self,
        database_url: str,
        workers: int,
        app: str = "jointbank.wsgi",
        env=None,
        options=(),
        cwd=ROOT,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: nobody reads a pipe during the run, and once its buffer is full
        # every worker that logs an error would block on the write.
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log = LOG_DIR / f"gunicorn-{self.port}.log"
        self.process = subprocess.Popen(
            [
                GUNICORN,
                app,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                # A worker stopped with SIGSTOP is killed and replaced after this long.
                "--timeout",
                "30",
                *options,
            ],
            cwd=cwd,
            env={**app_env(database_url), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/auth/login/", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn on {self.url} did not answer in {timeout} s")

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            for worker in self.workers():  # a stopped worker would ignore the master's TERM
                with suppress(psutil.NoSuchProcess):
                    worker.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def servers(
    database_url: str,
    instances: int,
    workers: int,
    app: str = "jointbank.wsgi",
    env=None,
    options=(),
    cwd=ROOT,
):
    started = [Gunicorn(database_url, workers, app, env, options, cwd) for _ in range(instances)]
    try:
        for server in started:
            server.wait_ready()
        yield started
    finally:
        for server in started:
            server.stop()


def collectstatic(database_url: str) -> None:
    manage(database_url, "collectstatic", "--noinput", "-v0")
