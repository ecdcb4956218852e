from __future__ import annotations

from decimal import Decimal

from accounts.models import LedgerEntry
from tests.base import BAD_AMOUNTS, HX, JointAccountTestCase


class WithdrawTests(JointAccountTestCase):
    def test_it_withdraws_with_htmx(self):
        response = self.client.post(self.url("withdraw"), {"amount": "100"}, **HX)

        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.data_balance(response), "900.00")
        self.assertContains(response, "−$100.00")
        entry = LedgerEntry.objects.latest("pk")
        self.assertEqual(
            (entry.kind, entry.amount, entry.balance_after),
            (LedgerEntry.Kind.WITHDRAWAL, Decimal("100.00"), Decimal("900.00")),
        )

    def test_it_can_empty_the_account(self):
        self.client.post(self.url("withdraw"), {"amount": "1000.00"}, **HX)
        self.assertEqual(self.balance(), Decimal("0.00"))

    def test_it_refuses_more_than_the_available_balance_and_names_it(self):
        entries = LedgerEntry.objects.count()
        response = self.client.post(self.url("withdraw"), {"amount": "1000.01"}, **HX)

        self.assertContains(response, "Insufficient funds: $1,000.00 available.", status_code=422)
        self.assertEqual(self.balance(), Decimal("1000.00"))
        self.assertEqual(LedgerEntry.objects.count(), entries)

    def test_insufficient_funds_without_javascript_shows_the_page_with_the_error(self):
        response = self.client.post(self.url("withdraw"), {"amount": "5000"})
        self.assertContains(response, "Insufficient funds", status_code=422)
        self.assertContains(response, 'id="balance"', status_code=422)

    def test_it_works_without_javascript(self):
        response = self.client.post(self.url("withdraw"), {"amount": "0.01"})
        self.assertRedirects(response, self.url("detail"), status_code=303)
        self.assertEqual(self.balance(), Decimal("999.99"))

    def test_it_refuses_every_bad_amount(self):
        for amount in BAD_AMOUNTS:
            with self.subTest(amount=amount):
                response = self.client.post(self.url("withdraw"), {"amount": amount}, **HX)
                self.assertEqual(response.status_code, 422)
        self.assertEqual(self.balance(), Decimal("1000.00"))
