"""Two holders, two browsers: what one does, the other sees without reloading."""

from __future__ import annotations

import time

from accounts.models import LedgerEntry
from tests.browser import BrowserTestCase


class CoHolderViewTests(BrowserTestCase):
    def test_bob_sees_alices_deposit_in_balance_and_history_within_3_seconds(self):
        alice = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        bob = self.sign_in(self.new_page(), "bob@example.com", self.account_url())
        bob.evaluate("window.notReloaded = true")
        self.assertEqual(bob.get_attribute("#balance", "data-balance"), "1000.00")

        alice.fill("#deposit-amount", "250.75")
        alice.click("#deposit-form button")
        alice.wait_for_selector('#balance[data-balance="1250.75"]')
        deposited = time.monotonic()
        entry = LedgerEntry.objects.latest("pk")

        bob.wait_for_selector('#balance[data-balance="1250.75"]', timeout=3000)
        bob.wait_for_selector(f"#entry-{entry.pk}", timeout=3000)
        self.assertLess(time.monotonic() - deposited, 3)
        self.assertTrue(bob.evaluate("window.notReloaded"), "bob's page was reloaded")
        self.assertEqual(bob.inner_text("#balance"), "$1,250.75")
        row = bob.inner_text(f"#entry-{entry.pk}")
        self.assertIn("Alice", row)
        self.assertIn("+$250.75", row)
        # The newest row is on top, and the chart moved with the balance.
        self.assertEqual(bob.get_attribute("#history-rows tr", "id"), f"entry-{entry.pk}")
        self.assertIn("$1,250.75 at the end", bob.text_content("#balance-chart-desc"))

    def test_bobs_withdrawal_reaches_alice_too(self):
        alice = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        bob = self.sign_in(self.new_page(), "bob@example.com", self.account_url())
        bob.fill("#withdraw-amount", "100")
        bob.click("#withdraw-form button")
        alice.wait_for_selector('#balance[data-balance="900.00"]', timeout=3000)
        self.assertIn("−$100.00", alice.inner_text("#history-rows"))
