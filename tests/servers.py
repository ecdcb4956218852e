"""Real server processes (gunicorn, the worker) on the test database, and a tiny browser-less
client."""

from __future__ import annotations

import glob
import http.cookiejar
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"


def shared_database_url() -> str:
    """The URL of the database this test runs on (test_jointbank), for other processes."""
    s = connection.settings_dict
    host = urllib.parse.quote(s["HOST"], safe="") if s["HOST"] else ""
    return f"postgres://{s['USER']}@{host}:{s['PORT']}/{s['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(**env):
    """A gunicorn process serving jointbank on the test database; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [str(GUNICORN), "jointbank.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": shared_database_url(),
            "DJANGO_DEBUG": "1",
            "JOINTBANK_REQUEST_LOG_LEVEL": "WARNING",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2)
                break
            except OSError:  # refused, reset, or timed out while the worker boots
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(process.stderr.read().decode()) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stderr.close()


class Visitor:
    """Cookies, CSRF tokens and form posts: what a browser does with a sign-in form.

    Every request names the site as `host`, as a reverse proxy in front of several server
    processes passes on the public host name (allauth's per-address limits key on it).
    """

    def __init__(self, base_url: str, host: str = "localhost"):
        self.base_url = base_url
        self.headers = {"Host": host}
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.base_url + path, headers=self.headers))

    def post_form(self, path: str, data: dict, page: str | None = None) -> tuple[int, str]:
        """GET the form's page (`path` itself unless said) for its CSRF token, then POST the
        form to `path` like a browser would."""
        page = page or path
        _, html = self.get(page)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **data}).encode()
        request = urllib.request.Request(
            self.base_url + path, data=body, headers={**self.headers, "Referer": page}
        )
        return self._open(request)

    def _open(self, request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


@contextmanager
def redis_server():
    """A throwaway redis-server on a free port, nothing saved to disk; yields its URL."""
    redis = shutil.which("redis-server")
    if redis is None:
        raise unittest.SkipTest("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def faketime_library() -> str:
    """libfaketime (Debian's `faketime`, which `make test` and .ci/run install)."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        raise RuntimeError("libfaketime is missing: apt-get install faketime")
    return found[0]


class WorkerProcess:
    """`python manage.py worker` as an OS process on the test database, its log collected.

    `clock` ("2026-01-31 23:59:50", UTC) starts the process's wall clock there, ticking on
    from that second (libfaketime); the database's clock is not moved.
    """

    def __init__(self, *, clock: str | None = None, **env):
        environment = {
            **os.environ,
            "DATABASE_URL": shared_database_url(),
            "DJANGO_DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        if clock:
            environment.update(
                LD_PRELOAD=faketime_library(),
                FAKETIME=f"@{clock}",
                TZ="UTC",
                # asyncio sleeps on the monotonic clock: leave it alone, only the date moves.
                FAKETIME_DONT_FAKE_MONOTONIC="1",
            )
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "worker"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._reader.join(timeout=5)
                raise AssertionError(f"no {text!r} in the worker's log:\n{self.log}")
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `signum` unless it has exited; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._reader.join(timeout=5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._reader.join(timeout=5)
