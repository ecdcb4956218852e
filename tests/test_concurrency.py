"""The lost-update proof: real OS processes, each with its own connection, released together."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

from django.core.management import CommandError, call_command
from django.test import TransactionTestCase

from accounts.models import Account
from loadtest.race import ledger_sum, random_changes
from tests.base import make_user
from tests.processes import run_in_processes

PROCESSES = 4
OPS = 100  # per process: 400 concurrent deposits and withdrawals
START = Decimal("100000.00")


def change_randomly(barrier, strategy, account_pk, user_pk, seed):
    barrier.wait()
    return random_changes(strategy, account_pk, user_pk, OPS, seed)


class LostUpdateTests(TransactionTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.account = Account.open("Household", by=self.alice)
        self.account.deposit(START, by=self.alice)

    def race(self, strategy: str) -> tuple[int, Decimal]:
        """The number of changes that reported success, and the balance they add up to."""
        calls = [(strategy, self.account.pk, self.alice.pk, seed) for seed in range(PROCESSES)]
        outcomes = run_in_processes(change_randomly, calls)
        self.account.refresh_from_db()
        operations = sum(count for _, count in outcomes)
        return operations, START + sum((total for total, _ in outcomes), Decimal("0.00"))

    def test_locked_changes_lose_nothing(self):
        operations, expected = self.race("locked")

        self.assertGreater(operations, PROCESSES * OPS * 0.9)
        self.assertEqual(self.account.balance, expected)
        self.assertEqual(ledger_sum(self.account), self.account.balance)
        self.assertEqual(self.account.entries.count(), operations + 1)
        last = self.account.entries.latest("pk")
        self.assertEqual(last.balance_after, self.account.balance)
        call_command("verify_ledger", stdout=StringIO())  # seq, hashes and sums all intact

    def test_the_same_harness_catches_the_naive_read_modify_write(self):
        # Shows the test above can fail: without the lock, updates are lost.
        _, expected = self.race("naive")

        self.assertNotEqual(self.account.balance, expected)
        self.assertNotEqual(ledger_sum(self.account), self.account.balance)
        with self.assertRaises(CommandError):
            call_command("verify_ledger", stdout=StringIO())
