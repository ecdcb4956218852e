from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.test import TransactionTestCase

from accounts.errors import InsufficientFunds
from accounts.models import GENESIS_HASH, Account, LedgerEntry, chain_hash
from tests.base import JointAccountTestCase, make_user
from tests.tampering import tamper


def sql(statement: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


class AppendOnlyTests(JointAccountTestCase):
    def setUp(self):
        super().setUp()
        self.entry = self.account.entries.get()

    def assertRefused(self, operation):
        message = "the ledger is append-only"
        with self.assertRaisesMessage(IntegrityError, message), transaction.atomic():
            operation()

    def test_the_database_refuses_to_update_a_ledger_row(self):
        self.assertRefused(lambda: LedgerEntry.objects.update(amount=Decimal("1.00")))
        self.assertRefused(lambda: self.entry.save())
        update = "UPDATE accounts_ledgerentry SET balance_after = 0 WHERE id = %s"
        self.assertRefused(lambda: sql(update, [self.entry.pk]))
        self.entry.refresh_from_db()
        self.assertEqual(self.entry.amount, Decimal("1000.00"))

    def test_the_database_refuses_to_delete_a_ledger_row(self):
        self.assertRefused(self.entry.delete)
        self.assertRefused(lambda: LedgerEntry.objects.all().delete())
        self.assertRefused(lambda: sql("DELETE FROM accounts_ledgerentry"))
        self.assertTrue(LedgerEntry.objects.filter(pk=self.entry.pk).exists())

    def test_with_the_trigger_off_the_same_update_goes_through(self):
        # Shows the tests above can fail: it is the trigger that refuses, nothing else.
        tamper("UPDATE accounts_ledgerentry SET amount = 1 WHERE id = %s", [self.entry.pk])
        self.entry.refresh_from_db()
        self.assertEqual(self.entry.amount, Decimal("1.00"))

    def test_the_triggers_are_on_after_the_suites_table_flushes(self):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = "
                "'accounts_ledgerentry'::regclass AND NOT tgisinternal ORDER BY tgname"
            )
            self.assertEqual(
                cursor.fetchall(),
                [
                    ("ledger_append_only", "O"),
                    ("ledger_append_only_truncate", "O"),
                    ("ledger_contributions", "O"),  # the "who put in what" running totals
                ],
            )

    def test_corrections_are_new_entries(self):
        self.account.withdraw(Decimal("10.00"), by=self.alice)  # a mistake
        self.account.deposit(Decimal("10.00"), by=self.alice)  # its correction
        self.assertEqual(self.account.entries.count(), 3)
        self.assertEqual(self.balance(), Decimal("1000.00"))


class TruncateTests(TransactionTestCase):
    # Committed rows: inside a test's transaction PostgreSQL refuses TRUNCATE for another reason.
    def test_the_database_refuses_to_truncate_the_ledger(self):
        alice = make_user("alice@example.com")
        Account.open("Household", by=alice).deposit(Decimal("1.00"), by=alice)
        # CASCADE: interest postings reference ledger entries, so a plain TRUNCATE is refused
        # for that reason before the trigger is reached.
        statements = ("TRUNCATE accounts_ledgerentry CASCADE", "TRUNCATE accounts_account CASCADE")
        for statement in statements:
            with self.subTest(statement), self.assertRaisesMessage(IntegrityError, "append-only"):
                sql(statement)
        self.assertEqual(LedgerEntry.objects.count(), 1)


class ChainTests(JointAccountTestCase):
    def test_each_account_numbers_its_entries_without_gaps(self):
        savings = Account.open("Savings", by=self.alice)
        self.account.deposit(Decimal("1.00"), by=self.bob)
        savings.deposit(Decimal("5.00"), by=self.alice)
        with self.assertRaises(InsufficientFunds):  # refused: takes no number
            self.account.withdraw(Decimal("5000.00"), by=self.alice)
        self.account.transfer(savings, Decimal("2.00"), by=self.alice)

        self.assertEqual(list(self.account.entries.values_list("seq", flat=True)), [1, 2, 3])
        self.assertEqual(list(savings.entries.values_list("seq", flat=True)), [1, 2])
        self.account.refresh_from_db()
        self.assertEqual(self.account.last_seq, 3)

    def test_the_hash_is_sha256_over_the_documented_fields_and_the_previous_hash(self):
        first = self.account.entries.get()
        second = self.account.withdraw(Decimal("0.50"), by=self.bob)

        fields = [
            str(self.account.pk),
            "1",
            "deposit",
            "1000.00",
            "1000.00",
            str(self.alice.pk),
            first.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "",
            "",
            "",
            "0" * 64,
        ]
        self.assertEqual(first.hash, hashlib.sha256("|".join(fields).encode()).hexdigest())
        self.assertEqual(second.hash, chain_hash(second, previous=first.hash))
        self.assertNotEqual(second.hash, chain_hash(second, previous=GENESIS_HASH))
        stored = LedgerEntry.objects.get(pk=second.pk)  # the same once read back
        self.assertEqual(chain_hash(stored, previous=first.hash), second.hash)
        self.account.refresh_from_db()
        self.assertEqual((self.account.last_seq, self.account.last_hash), (2, second.hash))

    def test_the_hash_covers_every_field(self):
        entry = self.account.withdraw(Decimal("0.50"), by=self.bob, idempotency_key=None)
        previous = self.account.entries.get(seq=1).hash
        for field, value in [
            ("account_id", self.account.pk + 1),
            ("seq", 3),
            ("kind", "deposit"),
            ("amount", Decimal("0.51")),
            ("balance_after", Decimal("999.51")),
            ("created_by_id", self.alice.pk),
            ("created_at", entry.created_at + timedelta(microseconds=1)),
            ("idempotency_key", "00000000-0000-0000-0000-000000000000"),
            ("counterparty_id", 1),
            ("pair_id", 1),
        ]:
            with self.subTest(field=field):
                changed = LedgerEntry.objects.get(pk=entry.pk)
                setattr(changed, field, value)
                self.assertNotEqual(chain_hash(changed, previous), entry.hash)


class AppendGuardTests(JointAccountTestCase):
    """Account._append writes only the entry built on the same locked row: one built on
    another account's row, or on this one before another entry, would fork the chain."""

    def assert_refused(self, build) -> None:
        with self.account.lock() as locked:
            entry = build(locked)
            with self.assertRaisesMessage(ValueError, "was not built on this row"):
                locked._append(entry)
        self.account.refresh_from_db()
        self.assertEqual((self.account.balance, self.account.last_seq), (Decimal("1000.00"), 1))
        self.assertEqual(self.account.entries.count(), 1)

    def test_an_entry_built_before_another_was_appended_is_refused(self):
        def stale(locked):
            entry = locked._next_entry(LedgerEntry.Kind.DEPOSIT, Decimal("1.00"), self.alice, None)
            locked.last_seq += 1  # as if another entry had been appended since
            return entry

        self.assert_refused(stale)

    def test_an_entry_built_on_another_accounts_row_is_refused(self):
        other = Account.open("Other", by=self.alice)
        other.deposit(Decimal("5.00"), by=self.alice)  # its next seq is this one's: 2

        def elsewhere(locked):
            with other.lock() as row:
                return row._next_entry(LedgerEntry.Kind.DEPOSIT, Decimal("1.00"), self.alice, None)

        self.assert_refused(elsewhere)
