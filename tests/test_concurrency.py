"""The lost-update proof: real OS processes, each with its own connection, released together."""

from decimal import Decimal
from io import StringIO

from django.core.management import CommandError, call_command
from django.test import TransactionTestCase

from accounts.models import Account
from accounts.race import race
from tests.base import make_user

PROCESSES = 4
OPS = 100  # per process: 400 concurrent deposits and withdrawals


class LostUpdateTests(TransactionTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.account = Account.open("Household", by=self.alice)
        self.account.deposit(Decimal("100000.00"), by=self.alice)

    def test_locked_changes_lose_nothing(self):
        result = race(self.account, self.alice, "locked", processes=PROCESSES, ops=OPS)

        self.assertGreater(result.operations, PROCESSES * OPS * 0.9)
        self.assertEqual(result.actual, result.expected)
        self.assertEqual(result.ledger, result.actual)
        self.assertEqual(self.account.entries.count(), result.operations + 1)
        last = self.account.entries.latest("pk")
        self.assertEqual(last.balance_after, result.actual)
        call_command("verify_ledger", stdout=StringIO())  # seq, hashes and sums all intact

    def test_the_same_harness_catches_the_naive_read_modify_write(self):
        # Shows the test above can fail: without the lock, updates are lost.
        result = race(self.account, self.alice, "naive", processes=PROCESSES, ops=OPS)

        self.assertNotEqual(result.actual, result.expected)
        self.assertNotEqual(result.ledger, result.actual)
        with self.assertRaises(CommandError):
            call_command("verify_ledger", stdout=StringIO())
