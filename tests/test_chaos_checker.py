"""The chaos checker must catch what it claims to: lost, duplicated and failed-but-applied
operations and broken balances. Fed a hand-made run against real ledger rows."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from django.db import connection

from accounts.models import Account, LedgerEntry
from loadtest import checker
from loadtest.chaos import Attempt, Operation
from loadtest.race import naive_change
from tests.base import JointAccountTestCase


class _Connection:
    """The one method the checker uses of a psycopg connection, on the test's own connection
    (a separate connection could not see the test transaction's rows)."""

    def execute(self, sql, params=None):
        cursor = connection.cursor()
        cursor.execute(sql, params)
        return cursor


class ChaosCheckerTests(JointAccountTestCase):
    def setUp(self):
        super().setUp()
        self.run = SimpleNamespace(
            operations=[],
            baseline=LedgerEntry.objects.latest("pk").pk,
            args=SimpleNamespace(instances=2, workers=2, faults=[], app="jointbank.wsgi"),
            client_count=1,
            client_errors=[],
            interest_log=[],
            fault_log=[],
            began=0.0,
            ended=10.0,
        )

    def op(self, kind, cents, outcome, applied=1):
        op = Operation(len(self.run.operations) + 1, kind, self.account.pk, 0)
        op.amount = Decimal(cents) / 100
        op.attempts.append(Attempt(1.0, 1.1, outcome, "200" if outcome == "ok" else "x"))
        self.run.operations.append(op)
        for number in range(applied):
            # A second application must bypass the key, or the model would replay the first.
            key = op.key if number == 0 else None
            getattr(self.account, kind)(op.amount, by=self.alice, idempotency_key=key)
        return op

    def check(self, keyed=None):
        return checker.check(self.run, _Connection(), keyed=keyed)

    def test_a_clean_run_has_no_violations(self):
        self.op("deposit", 101, "ok")
        self.op("withdraw", 102, "ok")
        self.op("withdraw", 103, "rejected", applied=0)
        self.op("deposit", 104, "unknown")  # applied although the client never heard: recovered

        report = self.check()

        self.assertEqual(report.violations, [])
        self.assertRegex(report.text, r"recovered +1 ")

    def test_it_catches_a_lost_operation(self):
        self.op("deposit", 101, "ok", applied=0)
        self.assertIn("lost (ok but absent", " ".join(self.check().violations))

    def test_it_catches_a_duplicated_operation(self):
        # By key the database refuses a duplicate outright (unique per account), so this is
        # the matching by account, kind and amount that a ledger without keys needs.
        self.op("deposit", 101, "unknown", applied=2)
        self.assertIn("duplicated", " ".join(self.check(keyed=False).violations))

    def test_it_catches_a_transfer_with_one_side_missing(self):
        other = Account.open("Savings", by=self.alice)
        op = self.op("deposit", 0, "ok", applied=0)
        op.kind, op.target, op.amount = "transfer", other.pk, Decimal("2.00")
        self.account.transfer(other, op.amount, by=self.alice, idempotency_key=op.key)
        self.assertEqual(self.check().violations, [])
        # Only the sending side: a ledger where the other side is missing.
        op.target = Account.open("Elsewhere", by=self.alice).pk

        self.assertIn("no operation explains", " ".join(self.check().violations))

    def test_it_catches_a_rejected_operation_that_was_applied(self):
        self.op("withdraw", 101, "rejected")
        self.assertIn("failed-but-applied", " ".join(self.check().violations))

    def test_it_catches_a_ledger_row_no_operation_explains(self):
        self.account.deposit(Decimal("5.55"), by=self.alice)
        self.assertIn("no operation explains", " ".join(self.check().violations))

    def test_it_catches_the_naive_lost_update(self):
        op = self.op("deposit", 101, "ok", applied=0)
        # A write computed from a stale balance: the ledger row is there, the balance is not.
        naive_change(self.account.pk, op.amount, self.alice.pk)
        Account.objects.filter(pk=self.account.pk).update(balance=Decimal("1000.00"))

        # The naive write carries no key: match by amount.
        violations = " ".join(self.check(keyed=False).violations)

        self.assertIn("balance ≠ Σ ledger", violations)
        self.assertIn("money not conserved", violations)
