from __future__ import annotations

import re
import uuid
from decimal import Decimal
from unittest import mock

from django.urls import reverse

from accounts import models
from accounts.errors import IdempotencyConflict
from accounts.models import Account, LedgerEntry
from tests.base import HX, JointAccountTestCase, make_user


def form_key(response, kind: str) -> str:
    """The idempotency key in the `kind` form of a page or fragment."""
    form = re.search(rf'<form id="{kind}-form".*?</form>', response.content.decode(), re.S)
    return re.search(r'name="idempotency_key" value="([^"]*)"', form.group(0)).group(1)


class IdempotencyTests(JointAccountTestCase):
    def setUp(self):
        super().setUp()
        self.key = str(uuid.uuid4())

    def deposit(self, amount="10.00", key=None, headers=HX, kind="deposit"):
        data = {"amount": amount, "idempotency_key": key or self.key}
        return self.client.post(self.url(kind), data, **headers)

    def test_the_page_renders_a_fresh_key_in_every_money_form(self):
        page = self.client.get(self.url("detail"))
        keys = {form_key(page, "deposit"), form_key(page, "withdraw")}
        self.assertEqual(len(keys), 2)
        for key in keys:
            uuid.UUID(key)
        self.assertNotEqual(form_key(self.client.get(self.url("detail")), "deposit"), keys.pop())
        for kind in ("deposit", "withdraw"):
            form = re.search(rf'<form id="{kind}-form".*?>', page.content.decode(), re.S)
            self.assertIn('hx-disabled-elt="find button"', form.group(0))

    def test_a_repeated_key_applies_once_and_returns_the_same_entry(self):
        first = self.deposit()
        entries = LedgerEntry.objects.count()
        second = self.deposit()

        self.assertEqual((first.status_code, second.status_code), (200, 200))
        self.assertEqual(LedgerEntry.objects.count(), entries)
        self.assertEqual(self.balance(), Decimal("1010.00"))
        self.assertNotIn("Idempotent-Replayed", first)
        self.assertEqual(second["Idempotent-Replayed"], "true")
        self.assertContains(second, "Already applied: Deposited $10.00.")
        self.assertEqual(self.data_balance(second), "1010.00")
        entry = LedgerEntry.objects.get(idempotency_key=self.key)
        self.assertEqual((entry.amount, entry.created_by), (Decimal("10.00"), self.alice))

    def test_the_model_returns_the_original_entry_marked_replayed(self):
        first = self.account.withdraw(Decimal("5.00"), by=self.alice, idempotency_key=self.key)
        again = self.account.withdraw(Decimal("5.00"), by=self.bob, idempotency_key=self.key)

        self.assertEqual(again.pk, first.pk)
        self.assertTrue(again.replayed)
        self.assertFalse(first.replayed)
        self.assertEqual(self.account.balance, Decimal("995.00"))

    def test_a_replay_after_the_balance_moved_still_answers_with_the_original(self):
        self.account.withdraw(Decimal("900.00"), by=self.alice, idempotency_key=self.key)
        self.account.withdraw(Decimal("100.00"), by=self.bob)  # the balance is now 0

        again = self.account.withdraw(Decimal("900.00"), by=self.alice, idempotency_key=self.key)
        self.assertTrue(again.replayed)
        self.assertEqual(self.balance(), Decimal("0.00"))

    def test_a_plain_form_replay_redirects_with_a_message(self):
        self.deposit(headers={})
        response = self.deposit(headers={})

        self.assertEqual(response.status_code, 303)
        self.assertEqual(response["Idempotent-Replayed"], "true")
        page = self.client.get(self.url("detail"))
        self.assertContains(page, "Already applied, nothing new was done: Deposited $10.00.")
        self.assertEqual(self.balance(), Decimal("1010.00"))

    def test_the_same_key_with_another_amount_or_kind_is_a_409_naming_the_applied_one(self):
        self.deposit()
        entries = LedgerEntry.objects.count()
        for label, response in [
            ("amount", self.deposit(amount="11.00")),
            ("kind", self.deposit(kind="withdraw")),
            ("plain form", self.deposit(amount="11.00", headers={})),
        ]:
            with self.subTest(label):
                self.assertContains(response, "already used for another operation", status_code=409)
                self.assertContains(response, "deposit of $10.00", status_code=409)
                self.assertNotIn("Retry-After", response)
        self.assertEqual(LedgerEntry.objects.count(), entries)
        self.assertEqual(self.balance(), Decimal("1010.00"))

    def test_a_key_used_on_another_account_is_a_409_that_says_nothing_about_it(self):
        # dave's own account; the key went with a deposit to Household, which he cannot see.
        dave = make_user("dave@example.com")
        daves = Account.open("Dave's", by=dave)
        self.deposit(amount="123.45")
        self.client.force_login(dave)
        entries = LedgerEntry.objects.count()
        for label, data in [
            ("same operation", {"amount": "123.45"}),
            ("another amount", {"amount": "5.00"}),
        ]:
            with self.subTest(label):
                response = self.client.post(
                    reverse("accounts:deposit", args=[daves.pk]),
                    {**data, "idempotency_key": self.key},
                    **HX,
                )
                self.assertContains(response, "already used for another operation", status_code=409)
                self.assertNotContains(response, "$123.45", status_code=409)
                self.assertNotContains(response, "applied", status_code=409)
                self.assertNotContains(response, "deposit of", status_code=409)
                self.assertNotEqual(form_key(response, "deposit"), self.key)
        with self.assertRaises(IdempotencyConflict) as raised:
            daves.deposit(Decimal("1.00"), by=dave, idempotency_key=self.key)
        self.assertIsNone(raised.exception.entry)
        self.assertEqual(LedgerEntry.objects.count(), entries)
        self.assertFalse(daves.entries.exists())

    def test_after_a_409_the_form_carries_a_new_key_so_sending_it_again_is_new(self):
        self.deposit()
        conflict = self.deposit(amount="11.00")
        new_key = form_key(conflict, "deposit")
        self.assertNotEqual(new_key, self.key)
        self.assertContains(conflict, 'value="11.00"', status_code=409)

        self.assertEqual(self.deposit(amount="11.00", key=new_key).status_code, 200)
        self.assertEqual(self.balance(), Decimal("1021.00"))

    def test_after_a_success_the_form_comes_back_with_a_fresh_key(self):
        response = self.deposit()
        self.assertNotEqual(form_key(response, "deposit"), self.key)
        uuid.UUID(form_key(response, "deposit"))

    def test_a_refused_request_keeps_its_key_and_stores_nothing_under_it(self):
        response = self.deposit(amount="5000.00", kind="withdraw")
        self.assertContains(response, "Insufficient funds", status_code=422)
        self.assertEqual(form_key(response, "withdraw"), self.key)

        self.assertEqual(self.deposit(amount="50.00", kind="withdraw").status_code, 200)
        self.assertEqual(self.balance(), Decimal("950.00"))

    def test_requests_without_a_key_are_each_a_new_operation(self):
        for _ in range(3):
            response = self.client.post(self.url("deposit"), {"amount": "1.00"}, **HX)
            self.assertEqual(response.status_code, 200)
        response = self.client.post(
            self.url("deposit"), {"amount": "1.00", "idempotency_key": ""}, **HX
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.balance(), Decimal("1004.00"))

    def test_a_malformed_key_is_a_422_and_writes_nothing(self):
        entries = LedgerEntry.objects.count()
        for key in ("not-a-uuid", "1234", "x" * 300):
            with self.subTest(key=key):
                response = self.client.post(
                    self.url("deposit"), {"amount": "1.00", "idempotency_key": key}, **HX
                )
                self.assertContains(response, "This form is damaged", status_code=422)
        self.assertEqual(LedgerEntry.objects.count(), entries)

    def test_the_database_allows_one_entry_per_key_and_account(self):
        from django.db import IntegrityError, transaction

        self.account.deposit(Decimal("1.00"), by=self.alice, idempotency_key=self.key)
        entry = self.account.entries.latest("seq")
        with self.assertRaises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.create(
                account=self.account,
                seq=entry.seq + 1,
                kind="deposit",
                amount=Decimal("1.00"),
                balance_after=entry.balance_after + 1,
                created_by=self.alice,
                idempotency_key=self.key,
                hash="0" * 64,
            )

    def test_a_duplicate_key_that_slipped_past_the_lock_is_answered_not_a_500(self):
        # A writer that skipped the check under the lock stored the key first: the unique
        # constraint fires and the method answers as the check would have.
        original = self.account.deposit(Decimal("7.00"), by=self.alice, idempotency_key=self.key)
        real_replayed = models._replayed
        calls = []

        def replay_blind_once(*args, **kwargs):
            calls.append(args)
            return None if len(calls) == 1 else real_replayed(*args, **kwargs)

        with mock.patch.object(models, "_replayed", replay_blind_once):
            again = self.account.deposit(Decimal("7.00"), by=self.bob, idempotency_key=self.key)
            self.assertEqual((again.pk, again.replayed), (original.pk, True))
            calls.clear()
            with self.assertRaises(IdempotencyConflict):
                self.account.deposit(Decimal("8.00"), by=self.bob, idempotency_key=self.key)
        self.assertEqual(self.balance(), Decimal("1007.00"))

    def test_one_key_on_two_accounts_is_applied_once_by_the_databases_constraint(self):
        # Lookups are scoped to the account, and two requests with one key on two accounts
        # lock different rows anyway: only the one-request-per-key constraint stops the
        # second, which answers 409 with nothing written.
        savings = Account.open("Savings", by=self.alice)
        self.account.deposit(Decimal("7.00"), by=self.alice, idempotency_key=self.key)
        with self.assertRaises(IdempotencyConflict):
            savings.deposit(Decimal("7.00"), by=self.alice, idempotency_key=self.key)
        self.assertFalse(savings.entries.exists())
        self.assertEqual(LedgerEntry.objects.filter(idempotency_key=self.key).count(), 1)
