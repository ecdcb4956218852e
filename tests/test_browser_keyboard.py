"""Keyboard only: a deposit with Tab and Enter, focus always visible, the balance announced."""

from __future__ import annotations

from decimal import Decimal

from tests.base import PASSWORD
from tests.browser import BrowserTestCase

FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {id: el.id, tag: el.tagName, text: el.innerText || el.value || "",
          visible: el.matches(":focus-visible") && style.outlineStyle !== "none"
                   && parseFloat(style.outlineWidth) >= 2};
}"""


class KeyboardTests(BrowserTestCase):
    def tab_to(self, page, element_id: str, limit: int = 40) -> list[dict]:
        """Press Tab until `element_id` has focus; every stop on the way must show focus."""
        stops = []
        for _ in range(limit):
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUSED)
            stops.append(focused)
            self.assertTrue(focused["visible"], f"focus is invisible on {focused}")
            if focused["id"] == element_id:
                return stops
        self.fail(f"Tab never reached #{element_id}: {stops}")

    def test_a_deposit_can_be_made_with_the_keyboard_alone(self):
        page = self.new_page()
        page.goto(self.url(f"/auth/login/?next=/accounts/{self.account.pk}/"))
        self.tab_to(page, "id_login")
        page.keyboard.type("alice@example.com")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(self.account_url())

        self.tab_to(page, "deposit-amount")
        page.keyboard.type("75.25")
        page.keyboard.press("Enter")
        page.wait_for_selector('#balance[data-balance="1075.25"]')
        self.assertIn("Deposited $75.25.", page.inner_text("#deposit-form"))
        # Focus is not lost to <body> after the form was swapped.
        self.assertNotEqual(page.evaluate("document.activeElement.tagName"), "BODY")

    def test_the_first_tab_offers_a_skip_link(self):
        page = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        page.keyboard.press("Tab")
        self.assertEqual(page.evaluate(FOCUSED)["text"], "Skip to content")
        self.assertTrue(page.evaluate(FOCUSED)["visible"])

    def test_the_balance_is_announced_when_it_changes(self):
        page = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        region = page.locator("#balance").locator("xpath=..")
        self.assertEqual(region.get_attribute("aria-live"), "polite")
        self.assertEqual(region.get_attribute("aria-atomic"), "true")
        # The live region must stay in the page while the balance inside it is replaced,
        # or screen readers would not announce the change.
        page.evaluate("document.querySelector('#balance').parentElement.dataset.kept = 'yes'")
        self.account.deposit(Decimal("5.00"), by=self.bob)
        page.wait_for_selector('#balance[data-balance="1005.00"]', timeout=3000)
        self.assertEqual(
            page.evaluate("document.querySelector('#balance').parentElement.dataset.kept"), "yes"
        )
        # The chart is described for screen readers.
        self.assertEqual(page.get_attribute("#balance-chart svg", "role"), "img")
        self.assertEqual(
            page.get_attribute("#balance-chart svg", "aria-labelledby"),
            "balance-chart-title balance-chart-desc",
        )
