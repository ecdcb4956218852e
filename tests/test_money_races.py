"""Idempotency keys and transfers under real concurrency: forked OS processes, each with its
own database connection, released together by a barrier."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client, TransactionTestCase

from accounts.errors import InsufficientFunds
from accounts.models import Account, LedgerEntry
from tests.base import make_user
from tests.processes import Raised, run_in_processes

PROCESSES = 6


def post_deposit(barrier, account_pk, user_pk, key):
    client = Client()
    client.force_login(get_user_model().objects.get(pk=user_pk))
    data = {"amount": "10.00"} if key is None else {"amount": "10.00", "idempotency_key": key}
    barrier.wait()
    response = client.post(f"/accounts/{account_pk}/deposit/", data, HTTP_HX_REQUEST="true")
    return response.status_code, response.get("Idempotent-Replayed", "")


def transfer_back_and_forth(barrier, from_pk, to_pk, user_pk, count):
    user = get_user_model().objects.get(pk=user_pk)
    source, target = Account(pk=from_pk), Account(pk=to_pk)
    done, refused = 0, 0
    barrier.wait()
    for i in range(count):
        try:
            source.transfer(target, Decimal(i % 7 + 1), by=user)
            done += 1
        except InsufficientFunds:
            refused += 1
    return done, refused


def lock_in_the_order_given(barrier, first_pk, second_pk):
    """What Account.transfer must not do: lock the rows in request order."""
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=first_pk)
        barrier.wait()
        Account.objects.select_for_update().get(pk=second_pk)
    return "no deadlock"


def deadlocks() -> int:
    """PostgreSQL's count of deadlocks detected in this database, once the children's server
    processes have exited (which is when they report their statistics)."""
    with connection.cursor() as cursor:
        for _ in range(100):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.1)
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


class ConcurrentKeyTests(TransactionTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.account = Account.open("Household", by=self.alice)

    def test_the_same_key_sent_by_many_processes_at_once_applies_once(self):
        key = str(uuid.uuid4())
        calls = [(self.account.pk, self.alice.pk, key)] * PROCESSES
        outcomes = run_in_processes(post_deposit, calls)

        self.assertEqual(sorted(outcomes), [(200, "")] + [(200, "true")] * (PROCESSES - 1))
        self.assertEqual(LedgerEntry.objects.filter(idempotency_key=key).count(), 1)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("10.00"))
        call_command("verify_ledger", stdout=StringIO())

    def test_without_a_key_the_same_race_writes_every_request(self):
        # Shows the test above can fail: the processes really do all get their write in.
        outcomes = run_in_processes(
            post_deposit, [(self.account.pk, self.alice.pk, None)] * PROCESSES
        )

        self.assertEqual(outcomes, [(200, "")] * PROCESSES)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("60.00"))


class OppositeTransferTests(TransactionTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.a = Account.open("A", by=self.alice)
        self.b = Account.open("B", by=self.alice)
        self.a.deposit(Decimal("100.00"), by=self.alice)
        self.b.deposit(Decimal("100.00"), by=self.alice)

    def test_opposite_transfers_from_many_processes_neither_deadlock_nor_lose_money(self):
        before = deadlocks()
        calls = [
            (self.a.pk, self.b.pk, self.alice.pk, 40)
            if n % 2
            else (self.b.pk, self.a.pk, self.alice.pk, 40)
            for n in range(PROCESSES)
        ]
        outcomes = run_in_processes(transfer_back_and_forth, calls)

        errors = [outcome for outcome in outcomes if isinstance(outcome, Raised)]
        self.assertEqual(errors, [])
        self.assertEqual(deadlocks(), before)
        done = sum(count for count, _ in outcomes)
        self.assertGreater(done, PROCESSES * 40 / 2)
        self.a.refresh_from_db()
        self.b.refresh_from_db()
        self.assertEqual(self.a.balance + self.b.balance, Decimal("200.00"))
        self.assertEqual(LedgerEntry.objects.filter(kind="transfer_out").count(), done)
        self.assertEqual(LedgerEntry.objects.filter(kind="transfer_in").count(), done)
        out = StringIO()
        call_command("verify_ledger", stdout=out)
        self.assertEqual(out.getvalue().count(": OK,"), 2)

    def test_locking_in_request_order_instead_does_deadlock(self):
        # Shows the test above can fail: two opposite transactions that each lock "their"
        # account first deadlock, and PostgreSQL's counter sees it.
        before = deadlocks()
        outcomes = run_in_processes(
            lock_in_the_order_given, [(self.a.pk, self.b.pk), (self.b.pk, self.a.pk)]
        )

        failed = [outcome for outcome in outcomes if isinstance(outcome, Raised)]
        self.assertEqual([raised.sqlstate for raised in failed], ["40P01"])
        self.assertIn("no deadlock", outcomes)  # the survivor went through
        self.assertEqual(deadlocks(), before + 1)
