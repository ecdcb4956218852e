"""Serialization failures and deadlocks (40001, 40P01) are retried a bounded number of times,
around the outermost transaction only. The failures are real PostgreSQL errors, raised by a
trigger for the first N ledger inserts (a sequence counts them: it survives the rollbacks)."""

from __future__ import annotations

from decimal import Decimal

from django.db import InternalError, OperationalError, connection, transaction
from django.test import TransactionTestCase

from accounts.locking import ATTEMPTS
from accounts.models import Account, LedgerEntry
from tests.base import HX, make_user


class RetryTests(TransactionTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.account = Account.open("Household", by=self.alice)
        self.account.deposit(Decimal("100.00"), by=self.alice)

    def fail_inserts(self, times: int, sqlstate: str = "40001"):
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE SEQUENCE test_attempts;"
                "CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF nextval('test_attempts') <= {times} THEN "
                f"RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END IF; "
                "RETURN NEW; END $$;"
                "CREATE TRIGGER test_fail BEFORE INSERT ON accounts_ledgerentry "
                "FOR EACH ROW EXECUTE FUNCTION test_fail()"
            )
        self.addCleanup(
            connection.cursor().execute,
            "DROP TRIGGER test_fail ON accounts_ledgerentry; DROP FUNCTION test_fail();"
            "DROP SEQUENCE test_attempts",
        )

    def attempts(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT last_value FROM test_attempts")
            return cursor.fetchone()[0]

    def test_a_serialization_failure_is_retried_and_applied_once(self):
        self.fail_inserts(1)
        entry = self.account.deposit(Decimal("5.00"), by=self.alice)

        self.assertEqual(self.attempts(), 2)
        self.assertEqual(entry.seq, 2)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("105.00"))
        self.assertEqual(LedgerEntry.objects.count(), 2)

    def test_a_deadlock_is_retried_too_for_transfers(self):
        savings = Account.open("Savings", by=self.alice)
        self.fail_inserts(ATTEMPTS - 1, sqlstate="40P01")
        self.account.transfer(savings, Decimal("5.00"), by=self.alice)

        self.assertEqual(self.attempts(), ATTEMPTS + 1)  # two inserts on the last attempt
        self.assertEqual(Account.objects.get(pk=savings.pk).balance, Decimal("5.00"))
        self.assertEqual(LedgerEntry.objects.count(), 3)

    def test_it_gives_up_after_the_bound_with_a_409(self):
        self.fail_inserts(ATTEMPTS)
        self.client.force_login(self.alice)
        response = self.client.post(
            f"/accounts/{self.account.pk}/deposit/", {"amount": "5.00"}, **HX
        )

        self.assertContains(response, "This account is busy, please retry", status_code=409)
        self.assertEqual(response["Retry-After"], "1")
        self.assertEqual(self.attempts(), ATTEMPTS)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("100.00"))
        self.assertEqual(LedgerEntry.objects.count(), 1)

    def test_inside_an_outer_transaction_it_is_not_retried(self):
        # The caller's own earlier work in that transaction is gone too: only the caller can
        # start again, so the error goes up untouched.
        self.fail_inserts(1)
        with self.assertRaises(OperationalError), transaction.atomic():
            self.account.deposit(Decimal("5.00"), by=self.alice)
        self.assertEqual(self.attempts(), 1)
        self.assertEqual(LedgerEntry.objects.count(), 1)

    def test_other_errors_are_not_retried(self):
        self.fail_inserts(1, sqlstate="XX000")
        with self.assertRaises(InternalError):
            self.account.deposit(Decimal("5.00"), by=self.alice)
        self.assertEqual(self.attempts(), 1)
