"""The money forms in Chromium: the server's message inline, one click = one deposit."""

from __future__ import annotations

from decimal import Decimal

from accounts.forms import AMOUNT_RULES
from accounts.models import LedgerEntry
from tests.browser import BrowserTestCase


class MoneyFormTests(BrowserTestCase):
    # The bad amount below is answered 422 on purpose; Chromium logs that status.
    expected_console = ("status of 422",)

    def test_a_deposit_changes_the_balance_and_history_without_a_reload(self):
        page = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        page.evaluate("window.notReloaded = true")
        page.fill("#deposit-amount", "100")
        page.click("#deposit-form button")
        page.wait_for_selector('#balance[data-balance="1100.00"]')
        self.assertTrue(page.evaluate("window.notReloaded"))
        self.assertEqual(page.input_value("#deposit-amount"), "")
        self.assertIn("+$100.00", page.inner_text("#history-rows"))
        self.assertEqual(self.balance(), Decimal("1100.00"))

    def test_a_bad_amount_shows_the_servers_message_inline_and_changes_nothing(self):
        page = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        page.evaluate("window.notReloaded = true")
        for bad in ("12.345", "-5", "1e3", "abc"):
            with self.subTest(amount=bad):
                page.fill("#deposit-amount", bad)
                # Mark the form, so the wait below is for the server's new form, not for the
                # error line the previous subtest left on the page.
                page.eval_on_selector("#deposit-form", "form => form.dataset.sent = 'yes'")
                page.click("#deposit-form button")
                page.wait_for_selector("#deposit-form:not([data-sent])")
                error = page.wait_for_selector("#deposit-error")
                self.assertEqual(error.inner_text(), AMOUNT_RULES)
                self.assertEqual(page.get_attribute("#deposit-amount", "aria-invalid"), "true")
                self.assertEqual(page.input_value("#deposit-amount"), bad)  # kept to correct
        self.assertTrue(page.evaluate("window.notReloaded"))
        self.assertEqual(page.get_attribute("#balance", "data-balance"), "1000.00")
        self.assertEqual(LedgerEntry.objects.count(), 1)

    def test_too_large_a_withdrawal_says_what_the_balance_is(self):
        page = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        page.fill("#withdraw-amount", "1000.01")
        page.click("#withdraw-form button")
        error = page.wait_for_selector("#withdraw-error")
        self.assertEqual(error.inner_text(), "Insufficient funds: $1,000.00 available.")
        self.assertEqual(self.balance(), Decimal("1000.00"))

    def test_a_double_click_sends_one_request_and_writes_one_row(self):
        page = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        posts = []
        page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
        page.fill("#deposit-amount", "10")
        page.dblclick("#deposit-form button")
        page.wait_for_selector('#balance[data-balance="1010.00"]')
        page.wait_for_timeout(1000)  # time for a second request, if one were coming
        self.assertEqual(posts, [self.account_url("deposit/")])
        self.assertEqual(LedgerEntry.objects.count(), 2)  # the opening deposit and this one
        self.assertEqual(self.balance(), Decimal("1010.00"))

    def balance(self) -> Decimal:
        self.account.refresh_from_db()
        return self.account.balance
