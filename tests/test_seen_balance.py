"""The seen-balance guard: a withdrawal or transfer made on a page that showed an older
balance, after another holder took money out, asks the person to confirm first."""

from __future__ import annotations

import uuid
from decimal import Decimal

from accounts.errors import BalanceChangedSinceSeen
from accounts.models import Account, LedgerEntry
from tests.base import HX, JointAccountTestCase


class SeenBalanceTests(JointAccountTestCase):
    def setUp(self):
        super().setUp()
        self.seen = Account.objects.get(pk=self.account.pk).version  # alice's page shows this
        self.key = str(uuid.uuid4())

    def withdraw(self, seen, amount="100.00", **headers):
        data = {"amount": amount, "idempotency_key": self.key, "seen_version": seen}
        return self.client.post(self.url("withdraw"), data, **headers)

    def test_the_page_carries_the_version_it_shows(self):
        page = self.client.get(self.url("detail"))
        self.assertContains(page, f'name="seen_version" value="{self.seen}"', count=1)

    def test_bob_withdrew_meanwhile_so_alice_is_asked_to_confirm(self):
        self.account.withdraw(Decimal("40.00"), by=self.bob)
        response = self.withdraw(self.seen, **HX)

        self.assertEqual(response.status_code, 409)
        self.assertContains(response, "Bob withdrew $40.00 at", status_code=409)
        self.assertContains(response, "the balance is now $960.00", status_code=409)
        self.assertEqual(self.balance(), Decimal("960.00"))
        new_version = Account.objects.get(pk=self.account.pk).version
        # The confirm button sends the same key again with the version just shown.
        self.assertContains(response, f'name="seen_version" value="{new_version}"', status_code=409)
        self.assertContains(response, f'name="idempotency_key" value="{self.key}"', status_code=409)
        self.assertContains(response, "Withdraw $100.00 anyway", status_code=409)

        confirmed = self.withdraw(new_version, **HX)
        self.assertEqual(confirmed.status_code, 200)
        self.assertEqual(self.balance(), Decimal("860.00"))
        self.assertEqual(LedgerEntry.objects.filter(idempotency_key=self.key).count(), 1)

    def test_without_javascript_the_page_asks_too(self):
        self.account.withdraw(Decimal("40.00"), by=self.bob)
        response = self.withdraw(self.seen)
        self.assertContains(response, "Bob withdrew $40.00", status_code=409)
        self.assertContains(response, 'id="balance"', status_code=409)

    def test_a_transfer_is_guarded_too(self):
        savings = Account.open("Savings", by=self.alice)
        self.account.withdraw(Decimal("40.00"), by=self.bob)
        data = {"amount": "10.00", "to_account": savings.pk, "seen_version": self.seen}
        response = self.client.post(self.url("transfer"), data, **HX)
        self.assertContains(response, "Transfer $10.00 anyway", status_code=409)
        self.assertEqual(self.balance(), Decimal("960.00"))

    def test_deposits_and_alices_own_moves_never_trigger_it(self):
        self.account.deposit(Decimal("40.00"), by=self.bob)
        self.account.withdraw(Decimal("5.00"), by=self.alice)
        response = self.withdraw(self.seen, **HX)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.balance(), Decimal("935.00"))

    def test_without_seen_version_other_clients_are_not_guarded(self):
        self.account.withdraw(Decimal("40.00"), by=self.bob)
        response = self.client.post(self.url("withdraw"), {"amount": "100.00"}, **HX)
        self.assertEqual(response.status_code, 200)

    def test_a_replayed_key_is_answered_before_the_guard(self):
        self.withdraw(self.seen, **HX)
        self.account.withdraw(Decimal("40.00"), by=self.bob)
        response = self.withdraw(self.seen, **HX)
        self.assertEqual((response.status_code, response["Idempotent-Replayed"]), (200, "true"))

    def test_the_model_refuses_with_what_changed(self):
        self.account.withdraw(Decimal("40.00"), by=self.bob)
        with self.assertRaises(BalanceChangedSinceSeen) as raised:
            self.account.withdraw(Decimal("1.00"), by=self.alice, seen_version=self.seen)
        self.assertEqual(raised.exception.version, Account.objects.get(pk=self.account.pk).version)

    def test_a_bad_seen_version_is_a_form_error(self):
        response = self.withdraw("abc", **HX)
        self.assertEqual(response.status_code, 422)
        self.assertEqual(self.balance(), Decimal("1000.00"))
