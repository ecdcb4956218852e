"""With JavaScript off, everything still works as plain forms, links and 303 redirects."""

from __future__ import annotations

from decimal import Decimal

from accounts.forms import AMOUNT_RULES
from tests.browser import BrowserTestCase, give_history


class NoJavaScriptTests(BrowserTestCase):
    expected_console = ("status of 422",)  # the bad amount entered on purpose

    def test_sign_in_deposit_withdraw_and_history_work_without_javascript(self):
        give_history(self.account, [self.alice, self.bob])
        self.account.refresh_from_db()
        start = self.account.balance
        page = self.new_page(java_script_enabled=False)

        self.sign_in(page, "alice@example.com", self.account_url())
        self.assertEqual(page.url, self.account_url())

        with page.expect_navigation() as navigation:
            page.fill("#deposit-amount", "40.50")
            page.click("#deposit-form button")
        self.assertEqual(navigation.value.request.redirected_from.method, "POST")
        self.assertEqual(page.url, self.account_url())  # 303 back to the account page
        self.assertIn("Deposited $40.50.", page.inner_text(".messages"))
        balance = Decimal(page.get_attribute("#balance", "data-balance"))
        self.assertEqual(balance, start + Decimal("40.50"))

        page.fill("#withdraw-amount", "0.50")
        page.click("#withdraw-form button")
        page.wait_for_url(self.account_url())
        self.assertIn("Withdrew $0.50.", page.inner_text(".messages"))
        self.assertEqual(Decimal(page.get_attribute("#balance", "data-balance")), start + 40)

        # A bad amount: the whole page again (422), with the message at the field.
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.fill("#withdraw-amount", "ten")
            page.click("#withdraw-form button")
        response = posted.value
        self.assertEqual(response.status, 422)
        page.wait_for_selector("#withdraw-error")
        self.assertEqual(page.inner_text("#withdraw-error"), AMOUNT_RULES)

        # Older history is a plain link to the next page.
        first_page = page.locator("#history-rows tr[id^=entry-]").all_inner_texts()
        page.click("#show-older a")
        page.wait_for_url("**/history/?before=*")
        older = page.locator("#history-rows tr[id^=entry-]").all_inner_texts()
        self.assertEqual(len(first_page), 25)
        self.assertTrue(older)
        self.assertFalse(set(first_page) & set(older))
