from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction

from accounts.errors import BalanceLimitExceeded, InsufficientFunds, InvalidAmount
from accounts.models import Account, LedgerEntry
from tests.base import JointAccountTestCase


class AccountModelTests(JointAccountTestCase):
    def test_deposit_returns_the_ledger_entry_and_updates_the_instance(self):
        entry = self.account.deposit(Decimal("0.10"), by=self.bob)

        self.assertEqual(entry.balance_after, Decimal("1000.10"))
        self.assertEqual(self.account.balance, Decimal("1000.10"))
        self.assertEqual(entry.created_by, self.bob)

    def test_it_rereads_the_balance_under_the_lock_instead_of_trusting_memory(self):
        stale = Account.objects.get(pk=self.account.pk)
        Account.objects.get(pk=self.account.pk).deposit(Decimal("100.00"), by=self.bob)

        entry = stale.withdraw(Decimal("50.00"), by=self.alice)
        self.assertEqual(entry.balance_after, Decimal("1050.00"))
        self.assertEqual(self.balance(), Decimal("1050.00"))

    def test_every_change_bumps_the_version(self):
        version = self.account.version
        self.account.deposit(Decimal("1.00"), by=self.alice)
        self.account.withdraw(Decimal("1.00"), by=self.alice)
        self.assertEqual(self.account.version, version + 2)

    def test_withdrawing_too_much_raises_and_changes_nothing(self):
        entries = LedgerEntry.objects.count()
        with self.assertRaises(InsufficientFunds) as raised:
            self.account.withdraw(Decimal("1000.01"), by=self.alice)
        self.assertEqual(raised.exception.available, Decimal("1000.00"))
        self.assertEqual(self.balance(), Decimal("1000.00"))
        self.assertEqual(LedgerEntry.objects.count(), entries)

    def test_the_balance_cannot_pass_the_column_maximum(self):
        Account.objects.filter(pk=self.account.pk).update(balance=Decimal("999999999999.99"))
        with self.assertRaises(BalanceLimitExceeded):
            self.account.deposit(Decimal("0.01"), by=self.alice)

    def test_it_refuses_amounts_that_are_not_positive_cents(self):
        for amount in (
            0,
            1.5,
            "1.00",
            Decimal("0"),
            Decimal("-1"),
            Decimal("0.001"),
            Decimal("NaN"),
            Decimal("Infinity"),
        ):
            with self.subTest(amount=amount), self.assertRaises(InvalidAmount):
                self.account.deposit(amount, by=self.alice)
        self.assertEqual(self.balance(), Decimal("1000.00"))

    def test_opening_makes_the_creator_the_first_holder(self):
        account = Account.open("Trip", by=self.carol)
        self.assertEqual([m.user for m in account.memberships.current()], [self.carol])


class ConstraintTests(JointAccountTestCase):
    def test_the_database_refuses_a_negative_balance(self):
        with self.assertRaises(IntegrityError), transaction.atomic():
            Account.objects.filter(pk=self.account.pk).update(balance=Decimal("-0.01"))

    def test_the_database_refuses_a_non_positive_ledger_amount(self):
        for amount in (Decimal("0.00"), Decimal("-1.00")):
            with (
                self.subTest(amount=amount),
                self.assertRaises(IntegrityError),
                transaction.atomic(),
            ):
                LedgerEntry.objects.create(
                    account=self.account,
                    kind="deposit",
                    amount=amount,
                    balance_after=Decimal("1.00"),
                    created_by=self.alice,
                )

    def test_a_holder_is_a_member_once(self):
        with self.assertRaises(IntegrityError), transaction.atomic():
            self.account.memberships.create(user=self.bob)


class LedgerTests(JointAccountTestCase):
    def test_the_ledger_adds_up_to_the_balance(self):
        self.account.deposit(Decimal("20.00"), by=self.bob)
        self.account.withdraw(Decimal("5.55"), by=self.alice)

        total = sum(entry.signed_amount for entry in self.account.entries.all())
        self.assertEqual(total, self.balance())
        last = self.account.entries.latest("pk")
        self.assertEqual(last.balance_after, self.balance())
