"""The history filters in real Chromium: typing swaps the results and pushes the URL, a reload
and the back button keep the filter, "Show older" keeps it too, new moves appear only when
they match, and a bad date says so."""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.sync_api import expect

from tests.browser import BrowserTestCase

ROWS = "#history-rows tr[id^=entry-]"


class HistoryFilterBrowserTests(BrowserTestCase):
    def setUp(self):
        super().setUp()
        self.groceries = self.account.deposit(Decimal("54.20"), by=self.alice, memo="groceries")
        self.rent = self.account.withdraw(Decimal("50.00"), by=self.bob, memo="rent")
        for n in range(30):
            self.account.deposit(Decimal("1.00"), by=self.bob, memo=f"Groceries run {n}")

    def rows(self, page) -> list[str]:
        return page.eval_on_selector_all(ROWS, "rows => rows.map(row => row.id)")

    def expect_rows(self, page, count: int) -> None:
        expect(page.locator(ROWS)).to_have_count(count, timeout=10_000)

    def test_typing_filters_without_a_reload_and_the_url_follows(self):
        page = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        page.evaluate("window.notReloaded = true")
        self.assertEqual(len(self.rows(page)), 25)

        page.fill("#filter-q", "rent")
        self.expect_rows(page, 1)
        self.assertEqual(self.rows(page), [f"entry-{self.rent.pk}"])
        self.assertIn("rent", page.inner_text(f"#entry-{self.rent.pk}"))
        page.wait_for_url(f"**/accounts/{self.account.pk}/?q=rent")
        self.assertTrue(page.evaluate("window.notReloaded"), "the page was reloaded")

        # A holder from the list narrows it the same way.
        page.fill("#filter-q", "groc")
        self.expect_rows(page, 25)
        page.select_option("#filter-holder", str(self.bob.pk))
        page.wait_for_url(f"**holder={self.bob.pk}**")
        # Both lists start with bob's newest 25 runs: the results were swapped once their
        # "Show older" link carries the holder too.
        older = page.locator("#show-older a")
        expect(older).to_have_attribute("href", re.compile(f"holder={self.bob.pk}"))
        self.expect_rows(page, 25)
        self.assertNotIn(f"entry-{self.groceries.pk}", self.rows(page))  # alice's
        self.assertTrue(page.evaluate("window.notReloaded"), "the page was reloaded")

        # "Show older" brings the rest of bob's groceries, still filtered.
        page.click("#show-older a")
        self.expect_rows(page, 30)
        self.assertEqual(page.locator("#show-older").count(), 0)

        # Reloading the pushed URL shows the same filter, filled in.
        page.reload()
        self.assertEqual(page.input_value("#filter-q"), "groc")
        self.assertEqual(page.input_value("#filter-holder"), str(self.bob.pk))
        self.expect_rows(page, 25)

        # Back: the URL before the holder was chosen, and its rows.
        page.go_back()
        page.wait_for_url(lambda url: "holder=" not in url)
        expect(page.locator("#filter-holder")).to_have_value("")
        expect(page.locator("#filter-q")).to_have_value("groc")
        self.expect_rows(page, 25)

    def test_a_bad_date_says_so_in_the_page(self):
        self.expected_console = ("status of 422",)  # the page answers 422, on purpose
        page = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        page.goto(self.account_url("?from=2026-02-30"))
        self.assertIn("Enter a date like 2026-01-31.", page.inner_text("#filter-error"))
        self.assertEqual(self.rows(page), [])

    def test_new_moves_appear_only_when_they_match(self):
        page = self.sign_in(self.new_page(), "alice@example.com", self.account_url("?q=rent"))
        self.expect_rows(page, 1)
        page.fill("#deposit-amount", "3.00")
        page.fill("#deposit-memo", "cinema")
        page.click("#deposit-form button")
        page.wait_for_selector('#balance[data-balance="1037.20"]')
        page.fill("#withdraw-amount", "2.00")
        page.fill("#withdraw-memo", "rent, part two")
        page.click("#withdraw-form button")
        page.wait_for_selector('#balance[data-balance="1035.20"]')
        self.expect_rows(page, 2)
        self.assertIn("rent, part two", page.inner_text("#history-rows"))
        self.assertNotIn("cinema", page.inner_text("#history-rows"))
