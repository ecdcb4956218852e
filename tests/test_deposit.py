from __future__ import annotations

from decimal import Decimal

from accounts.models import LedgerEntry
from tests.base import BAD_AMOUNTS, HX, JointAccountTestCase


class DepositTests(JointAccountTestCase):
    def test_it_deposits_with_htmx_and_answers_with_the_partial(self):
        response = self.client.post(self.url("deposit"), {"amount": "100", "after": "0"}, **HX)

        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.balance(), Decimal("1100.00"))
        self.assertEqual(self.data_balance(response), "1100.00")
        body = response.content.decode()
        self.assertIn('id="deposit-form"', body)  # the reset form
        self.assertIn('value=""', body)
        self.assertIn('hx-swap-oob="afterbegin:#history-rows"', body)  # the new history row
        self.assertIn("+$100.00", body)
        self.assertNotIn("<html", body)

    def test_it_records_a_ledger_row(self):
        self.client.post(self.url("deposit"), {"amount": "12.34"}, **HX)

        entry = LedgerEntry.objects.latest("pk")
        self.assertEqual(entry.kind, LedgerEntry.Kind.DEPOSIT)
        self.assertEqual(entry.amount, Decimal("12.34"))
        self.assertEqual(entry.balance_after, Decimal("1012.34"))
        self.assertEqual(entry.created_by, self.alice)

    def test_it_works_without_javascript_and_redirects_with_a_message(self):
        response = self.client.post(self.url("deposit"), {"amount": "250.50"})

        self.assertRedirects(
            response, self.url("detail"), status_code=303, fetch_redirect_response=False
        )
        self.assertEqual(self.balance(), Decimal("1250.50"))
        page = self.client.get(self.url("detail"))
        self.assertContains(page, "Deposited $250.50. The balance is now $1,250.50.")

    def test_a_co_holder_can_deposit(self):
        self.client.force_login(self.bob)
        self.client.post(self.url("deposit"), {"amount": "1"}, **HX)
        self.assertEqual(LedgerEntry.objects.latest("pk").created_by, self.bob)

    def test_it_refuses_every_bad_amount_with_422_and_writes_nothing(self):
        entries = LedgerEntry.objects.count()
        for amount in BAD_AMOUNTS:
            for headers in (HX, {}):
                with self.subTest(amount=amount, htmx=bool(headers)):
                    response = self.client.post(self.url("deposit"), {"amount": amount}, **headers)
                    self.assertEqual(response.status_code, 422)
                    self.assertContains(response, "digits with an optional point", status_code=422)
        self.assertEqual(self.balance(), Decimal("1000.00"))
        self.assertEqual(LedgerEntry.objects.count(), entries)

    def test_it_refuses_a_missing_amount(self):
        response = self.client.post(self.url("deposit"), {}, **HX)
        self.assertContains(response, "digits with an optional point", status_code=422)

    def test_it_accepts_the_limits(self):
        for amount in ("0.01", "1000000.00", "1000000", "007.5"):
            with self.subTest(amount=amount):
                response = self.client.post(self.url("deposit"), {"amount": amount}, **HX)
                self.assertEqual(response.status_code, 200)
        self.assertEqual(self.balance(), Decimal("2001007.51"))

    def test_it_refuses_a_deposit_past_the_largest_balance(self):
        from accounts.models import Account

        Account.objects.filter(pk=self.account.pk).update(balance=Decimal("999999999999.00"))
        response = self.client.post(self.url("deposit"), {"amount": "1.00"}, **HX)

        self.assertContains(
            response, "This would take the balance above $999,999,999,999.99.", status_code=422
        )
        self.assertEqual(self.balance(), Decimal("999999999999.00"))

    def test_the_422_form_keeps_what_was_typed_and_marks_the_field(self):
        response = self.client.post(self.url("deposit"), {"amount": "1e3"}, **HX)
        self.assertContains(response, 'value="1e3"', status_code=422)
        self.assertContains(response, 'aria-invalid="true"', status_code=422)
