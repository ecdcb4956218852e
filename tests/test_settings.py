from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.test import SimpleTestCase

ROOT = Path(__file__).resolve().parent.parent


def check(**env):
    """Run `manage.py check` in a fresh process with these environment variables."""
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


class SettingsTests(SimpleTestCase):
    def test_it_refuses_sqlite(self):
        result = check(DATABASE_URL="sqlite:///db.sqlite3", DJANGO_DEBUG="1")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("DATABASE_URL must point to PostgreSQL", result.stderr)

    def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(self):
        result = check(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("DJANGO_SECRET_KEY is not set", result.stderr)

    def test_it_refuses_a_secret_key_shorter_than_50_characters_when_debug_is_off(self):
        result = check(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="k3y-" * 12)  # 48 characters
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("ImproperlyConfigured: DJANGO_SECRET_KEY is too short (48", result.stderr)

    def test_a_short_development_key_is_fine_with_debug_on(self):
        result = check(DJANGO_DEBUG="1", DJANGO_SECRET_KEY="short")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_it_starts_with_a_secret_key_and_debug_off(self):
        result = check(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="x" * 50, DJANGO_EMAIL_URL="console://")
        self.assertEqual(result.returncode, 0, result.stderr)


def without_database_url(command: list[str], **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    environment.pop("DATABASE_URL", None)
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


class NoDatabaseUrlTests(SimpleTestCase):
    """The settings start no database: production must name one, and a command run by hand
    without DATABASE_URL says in one line how to run it."""

    def test_importing_the_settings_starts_nothing(self):
        snippet = (
            "import json, sys; import jointbank.settings as s; "
            "print(json.dumps([s.DATABASES, 'jointbank.embedded_db' in sys.modules]))"
        )
        result = without_database_url([sys.executable, "-c", snippet], DJANGO_DEBUG="1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "[{}, false]")

    def test_production_refuses_to_start_without_a_database_url(self):
        result = without_database_url(
            [sys.executable, "-m", "gunicorn", "jointbank.wsgi", "--check-config"],
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY="x" * 50,
            DJANGO_EMAIL_URL="console://",
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("DATABASE_URL is not set", result.stderr)
        self.assertIn("starts no database of its own", result.stderr)

    def test_manage_py_says_in_one_line_how_to_run_it(self):
        result = without_database_url([sys.executable, "manage.py", "migrate"], DJANGO_DEBUG="1")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(
            result.stderr,
            "DATABASE_URL is not set: point it at a PostgreSQL database (postgres://...), or run "
            '`make manage ARGS="migrate"` (or `python -m jointbank.embedded_db run -- python '
            "manage.py migrate`) to use the embedded one.\n",
        )

    def test_pytest_says_it_in_one_line_too(self):
        result = without_database_url(
            [sys.executable, "-m", "pytest", "tests/test_settings.py"], DJANGO_DEBUG="1"
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertIn('run `make test PYTEST_ARGS="..."`', result.stderr)
