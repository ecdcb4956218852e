"""Django's deployment checklist (`check --deploy`) with the production settings."""

from __future__ import annotations

import subprocess
import sys

from django.test import SimpleTestCase

from tests.production import ROOT, production_environment


def check_deploy(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


class DeployCheckTests(SimpleTestCase):
    def test_production_settings_pass_without_a_warning(self):
        result = check_deploy()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("no issues", result.stdout)

    def test_it_fails_when_https_hardening_is_off(self):
        # The control: the same check does catch a weaker configuration.
        result = check_deploy(DJANGO_SECURE="0")
        self.assertNotEqual(result.returncode, 0)
        for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
            self.assertIn(warning, result.stderr)

    def test_it_fails_with_a_weak_secret_key(self):
        # Long enough to start (shorter keys are refused before the check), but one character.
        result = check_deploy(DJANGO_SECRET_KEY="x" * 50)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("security.W009", result.stderr)
