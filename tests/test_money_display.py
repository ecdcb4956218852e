from __future__ import annotations

from decimal import Decimal

from django.test import SimpleTestCase, override_settings

from accounts.formatting import money
from tests.base import JointAccountTestCase


class MoneyFilterTests(SimpleTestCase):
    def test_it_shows_the_currency_and_thousands_separators(self):
        for currency, expected in [
            ("USD", "$1,234,567.50"),
            ("EUR", "€1,234,567.50"),
            ("GBP", "£1,234,567.50"),
            ("CHF", "1,234,567.50 CHF"),
        ]:
            with self.subTest(currency), override_settings(JOINTBANK_CURRENCY=currency):
                self.assertEqual(money(Decimal("1234567.5")), expected)

    def test_signs_use_a_real_minus(self):
        self.assertEqual(money(Decimal("-84.20")), "−$84.20")
        self.assertEqual(money(Decimal("84.20"), "signed"), "+$84.20")
        self.assertEqual(money(Decimal("0.00")), "$0.00")


class MoneyOnPagesTests(JointAccountTestCase):
    @override_settings(JOINTBANK_CURRENCY="EUR")
    def test_pages_show_amounts_in_the_configured_currency(self):
        self.account.withdraw(Decimal("234.50"), by=self.bob)
        page = self.client.get(self.url("detail"))
        self.assertContains(page, "€765.50")  # the balance
        self.assertContains(page, "−€234.50")  # the history
        self.assertContains(page, 'data-balance="765.50"')  # the machine-readable value stays

    def test_the_statement_keeps_plain_decimals(self):
        self.account.deposit(Decimal("1234567.00"), by=self.bob)
        body = b"".join(self.client.get(self.url("statement")).streaming_content).decode()
        self.assertIn(",1234567.00,1235567.00,", body)
        self.assertNotIn("$", body)
