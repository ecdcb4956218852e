from __future__ import annotations

import uuid
from decimal import Decimal

from django.urls import reverse

from accounts.errors import SameAccountTransfer
from accounts.models import Account, LedgerEntry
from tests.base import BAD_AMOUNTS, HX, JointAccountTestCase


class TransferTests(JointAccountTestCase):
    """alice holds Household ($1000, with bob) and Savings ($50, alone)."""

    def setUp(self):
        super().setUp()
        self.savings = Account.open("Savings", by=self.alice)
        self.savings.deposit(Decimal("50.00"), by=self.alice)
        self.entries = LedgerEntry.objects.count()

    def transfer(self, amount="100.00", to=None, headers=HX, **extra):
        data = {"to_account": (to or self.savings).pk, "amount": amount, **extra}
        return self.client.post(self.url("transfer"), data, **headers)

    def balances(self):
        return tuple(Account.objects.get(pk=a.pk).balance for a in (self.account, self.savings))

    def test_it_moves_the_money_and_writes_two_linked_entries(self):
        response = self.transfer(idempotency_key=str(uuid.uuid4()))

        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.balances(), (Decimal("900.00"), Decimal("150.00")))
        out = self.account.entries.latest("seq")
        into = self.savings.entries.latest("seq")
        self.assertEqual((out.kind, out.amount, out.balance_after), ("transfer_out", 100, 900))
        self.assertEqual((into.kind, into.amount, into.balance_after), ("transfer_in", 100, 150))
        # Each entry names the other.
        self.assertEqual((out.counterparty, into.counterparty), (self.savings, self.account))
        self.assertEqual(into.pair, out)
        self.assertEqual(out.paired_in, into)
        self.assertEqual(into.idempotency_key, out.idempotency_key)
        self.assertEqual((out.created_by, into.created_by), (self.alice, self.alice))

    def test_the_htmx_answer_updates_the_balance_and_history_and_resets_the_form(self):
        response = self.transfer(amount="12.50", after="0")

        self.assertEqual(self.data_balance(response), "987.50")
        self.assertContains(response, 'id="transfer-form"')
        self.assertContains(response, "Transferred $12.50 to Savings.")
        self.assertContains(response, "Transfer to Savings")
        self.assertContains(response, "−$12.50")

    def test_a_plain_form_transfer_redirects_with_a_message(self):
        response = self.transfer(amount="1000.00", headers={})

        self.assertRedirects(
            response, self.url("detail"), status_code=303, fetch_redirect_response=False
        )
        page = self.client.get(self.url("detail"))
        self.assertContains(page, "Transferred $1,000.00 to Savings. The balance is now $0.00.")
        self.assertEqual(self.balances(), (Decimal("0.00"), Decimal("1050.00")))

    def test_both_holders_of_each_account_see_it_in_their_history(self):
        self.transfer(amount="30.00")
        self.client.force_login(self.bob)  # holds Household only
        self.assertContains(self.client.get(self.url("detail")), "Transfer to Savings")
        self.client.force_login(self.alice)
        savings = self.client.get(reverse("accounts:detail", args=[self.savings.pk]))
        self.assertContains(savings, "Transfer from Household")
        self.assertContains(savings, "+$30.00")

    def test_insufficient_funds_is_a_422_and_writes_nothing(self):
        for headers in (HX, {}):
            response = self.transfer(amount="1000.01", headers=headers)
            self.assertContains(
                response, "Insufficient funds: $1,000.00 available.", status_code=422
            )
        self.assertEqual(self.balances(), (Decimal("1000.00"), Decimal("50.00")))
        self.assertEqual(LedgerEntry.objects.count(), self.entries)

    def test_a_target_past_the_largest_balance_is_a_422_and_writes_nothing(self):
        Account.objects.filter(pk=self.savings.pk).update(balance=Decimal("999999999999.00"))
        response = self.transfer(amount="1.00")

        self.assertContains(
            response, "the balance of Savings above $999,999,999,999.99", status_code=422
        )
        self.assertEqual(self.balance(), Decimal("1000.00"))
        self.assertEqual(LedgerEntry.objects.count(), self.entries)

    def test_a_target_the_user_does_not_hold_is_a_404_and_writes_nothing(self):
        carols = Account.open("Carol's", by=self.carol)
        for target in (carols.pk, 999999):
            with self.subTest(target=target):
                response = self.client.post(
                    self.url("transfer"), {"to_account": target, "amount": "1.00"}, **HX
                )
                self.assertEqual(response.status_code, 404)
        self.assertEqual(self.balance(), Decimal("1000.00"))
        self.assertEqual(LedgerEntry.objects.count(), self.entries)

    def test_a_target_closed_meanwhile_shows_why_without_javascript(self):
        # The page no longer offers a closed target, so the form is shown for its error alone.
        self.savings.withdraw(Decimal("50.00"), by=self.alice)
        self.savings.close(by=self.alice)
        response = self.transfer(headers={})
        self.assertContains(response, 'id="transfer-form"', status_code=409)
        self.assertContains(response, "was closed on", status_code=409)
        self.assertEqual(self.balances()[0], Decimal("1000.00"))

    def test_a_source_the_user_does_not_hold_is_a_404(self):
        self.client.force_login(self.carol)
        self.assertEqual(self.transfer().status_code, 404)
        self.assertEqual(LedgerEntry.objects.count(), self.entries)

    def test_transferring_to_the_same_account_is_a_422(self):
        response = self.transfer(to=self.account)
        self.assertContains(response, "Choose another account", status_code=422)
        with self.assertRaises(SameAccountTransfer):
            self.account.transfer(self.account, Decimal("1.00"), by=self.alice)
        self.assertEqual(LedgerEntry.objects.count(), self.entries)

    def test_a_missing_or_bad_target_is_a_422(self):
        for target in ("", "abc", "0", "-1", "1.5", "9" * 30):
            with self.subTest(target=target):
                response = self.client.post(
                    self.url("transfer"), {"to_account": target, "amount": "1.00"}, **HX
                )
                self.assertContains(response, "Choose the account to transfer to.", status_code=422)
        self.assertEqual(LedgerEntry.objects.count(), self.entries)

    def test_bad_amounts_are_a_422(self):
        for amount in BAD_AMOUNTS:
            with self.subTest(amount=amount):
                response = self.transfer(amount=amount)
                self.assertContains(response, "digits with an optional point", status_code=422)
        self.assertEqual(LedgerEntry.objects.count(), self.entries)

    def test_a_repeated_key_transfers_once(self):
        key = str(uuid.uuid4())
        self.transfer(idempotency_key=key)
        again = self.transfer(idempotency_key=key)

        self.assertEqual(again.status_code, 200)
        self.assertEqual(again["Idempotent-Replayed"], "true")
        self.assertContains(again, "Already applied: Transferred $100.00 to Savings.")
        self.assertEqual(self.balances(), (Decimal("900.00"), Decimal("150.00")))
        self.assertEqual(LedgerEntry.objects.count(), self.entries + 2)

    def test_the_same_key_for_another_transfer_is_a_409(self):
        key = str(uuid.uuid4())
        trip = Account.open("Trip", by=self.alice)
        self.transfer(idempotency_key=key)
        for label, response in [
            ("amount", self.transfer(amount="99.00", idempotency_key=key)),
            ("target", self.transfer(to=trip, idempotency_key=key)),
            (
                "deposit",
                self.client.post(
                    self.url("deposit"), {"amount": "100.00", "idempotency_key": key}, **HX
                ),
            ),
            (
                "reverse",
                self.client.post(
                    reverse("accounts:transfer", args=[self.savings.pk]),
                    {"to_account": self.account.pk, "amount": "100.00", "idempotency_key": key},
                    **HX,
                ),
            ),
        ]:
            with self.subTest(label):
                self.assertContains(response, "already used for another operation", status_code=409)
        self.assertEqual(LedgerEntry.objects.count(), self.entries + 2)

    def test_the_page_offers_the_users_other_accounts_only(self):
        Account.open("Carol's", by=self.carol)
        page = self.client.get(self.url("detail"))
        self.assertContains(page, 'id="transfer-form"')
        self.assertContains(page, f'<option value="{self.savings.pk}">Savings ($50.00)</option>')
        self.assertNotContains(page, "Carol&#x27;s")
        self.assertNotContains(page, f'<option value="{self.account.pk}"')

    def test_a_closed_account_is_not_offered_and_refuses_a_transfer_with_409(self):
        self.savings.withdraw(Decimal("50.00"), by=self.alice)
        self.savings.close(by=self.alice)
        entries = LedgerEntry.objects.count()
        self.assertNotContains(self.client.get(self.url("detail")), 'id="transfer-form"')

        response = self.transfer(amount="1.00")
        self.assertContains(response, "closed", status_code=409)
        self.assertEqual(self.balance(), Decimal("1000.00"))
        self.assertEqual(LedgerEntry.objects.count(), entries)

    def test_a_closed_account_still_offers_its_statement(self):
        self.savings.withdraw(Decimal("50.00"), by=self.alice)
        self.savings.close(by=self.alice)
        page = self.client.get(reverse("accounts:detail", args=[self.savings.pk]))
        self.assertContains(page, reverse("accounts:statement", args=[self.savings.pk]))
        self.assertNotContains(page, 'id="deposit-form"')

    def test_without_another_account_there_is_no_transfer_form(self):
        self.client.force_login(self.bob)
        self.assertNotContains(self.client.get(self.url("detail")), 'id="transfer-form"')
