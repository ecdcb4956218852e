"""Run a snippet in a fresh process with production settings (DEBUG off, DJANGO_SECURE on).

Security settings are read from the environment at import time, so the only honest way to
test them is a new process with that environment. The snippet prints JSON; the result is it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECURE": "1",
    "DJANGO_SECRET_KEY": "production-like-secret-key-for-tests-" + "x" * 40,
    # Production refuses to start without an e-mail setting; these tests send nothing real.
    "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    "DJANGO_EMAIL_URL": "",
}
PRELUDE = """
import json, django
django.setup()
from django.test import Client
from django.test.utils import override_settings, setup_test_environment
setup_test_environment()
# {% static %} would need collectstatic's manifest; everything else is production's.
override_settings(STORAGES={
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}).enable()
client = Client()
"""


def production_environment(**env) -> dict:
    """This process's environment with production settings, less what only tests set (the
    browser suite's DJANGO_ALLOW_ASYNC_UNSAFE, which `check --deploy` rightly refuses)."""
    environment = {**os.environ, **PRODUCTION, **env}
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return environment


def run_in_production(snippet: str, **env) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + snippet],
        cwd=ROOT,
        env=production_environment(DJANGO_SETTINGS_MODULE="jointbank.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"the snippet failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])
