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

    def test_it_starts_with_a_secret_key_and_debug_off(self):
        result = check(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="x" * 50)
        self.assertEqual(result.returncode, 0, result.stderr)
