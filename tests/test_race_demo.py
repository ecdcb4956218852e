"""race_demo: the deterministic interleaving loses $100 without the lock and nothing with it."""

from __future__ import annotations

import re
from decimal import Decimal
from io import StringIO

from django.core.management import call_command
from django.test import TransactionTestCase, override_settings

from accounts.models import Account
from loadtest.race import interleave
from tests.base import make_user


class InterleavingTests(TransactionTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.account = Account.open("Household", by=self.alice)
        self.account.deposit(Decimal("1000.00"), by=self.alice)

    def run_story(self, strategy):
        lines = []
        final = interleave(self.account.pk, self.alice.pk, strategy, lines.append)
        return final, lines

    def test_the_naive_read_modify_write_ends_at_900(self):
        final, lines = self.run_story("naive")

        self.assertEqual(final, Decimal("900.00"))
        self.assertEqual(
            lines[:2], ["A reads the balance: 1000.00", "B reads the balance: 1000.00"]
        )

    def test_reading_under_the_row_lock_ends_at_1000(self):
        final, lines = self.run_story("locked")

        self.assertEqual(final, Decimal("1000.00"))
        self.assertTrue(lines[1].startswith("B waits"), lines)
        self.assertIn("B reads the balance: 1100.00", lines)
        self.assertEqual(self.account.entries.count(), 3)


class RaceDemoCommandTests(TransactionTestCase):
    @override_settings(DEBUG=True)
    def test_it_tells_both_stories_and_prints_the_table(self):
        out = StringIO()
        call_command("race_demo", processes=2, ops=30, stdout=out)
        text = out.getvalue()

        self.assertIn("final balance $900.00: $100.00 lost", text)
        self.assertIn("final balance $1,000.00: nothing lost", text)
        locked = re.search(r"^locked +\d+ +\S+ +\S+ +(\S+)", text, re.MULTILINE)
        self.assertEqual(locked.group(1), "$0.00")
        self.assertRegex(text, r"(?m)^naive +\d+ ")

    @override_settings(DEBUG=False)
    def test_it_refuses_to_run_with_debug_off_unless_forced(self):
        from django.core.management import CommandError

        with self.assertRaises(CommandError):
            call_command("race_demo", stdout=StringIO())
        self.assertFalse(Account.objects.exists())
