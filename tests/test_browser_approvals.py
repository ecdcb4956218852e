"""Shared control in real Chromium: alice's big withdrawal waits, bob approves it from his
open page, and both see the balance drop once."""

from __future__ import annotations

from decimal import Decimal

from accounts.approvals import ApprovalRequest
from accounts.models import Account, LedgerEntry
from tests.browser import BrowserTestCase


class ApprovalBrowserTests(BrowserTestCase):
    expected_console = ("status of 409",)  # the confirm step of the seen-balance guard

    def test_alices_150_waits_for_bob_who_approves_it_from_his_open_page(self):
        alice = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        bob = self.sign_in(self.new_page(), "bob@example.com", self.account_url())
        bob.evaluate("window.notReloaded = true")

        # Alice sets a $100 threshold: tightening, so it applies at once.
        alice.fill("#rules-approval_threshold", "100")
        alice.click("#rules-form button")
        alice.wait_for_selector("#rules-form .done")
        self.assertIn("Approval threshold: $100.00", alice.inner_text("#rules-now"))

        # Her $150 withdrawal waits: the balance stays, the available balance drops.
        alice.fill("#withdraw-amount", "150")
        alice.click("#withdraw-form button")
        alice.wait_for_selector("#withdraw-form .waiting")
        self.assertIn("waiting for another holder's approval", alice.inner_text("#withdraw-form"))
        self.assertEqual(alice.get_attribute("#balance", "data-balance"), "1000.00")
        self.assertEqual(alice.get_attribute("#available", "data-available"), "850.00")
        request = ApprovalRequest.objects.get()
        row = f'[data-request-id="{request.pk}"]'
        self.assertEqual(alice.get_attribute(row, "data-state"), "pending")
        self.assertEqual(alice.locator(f"{row} button").all_inner_texts(), ["Cancel"])

        # Bob sees it appear without reloading, and approves it.
        bob.wait_for_selector(f'{row}[data-state="pending"]', timeout=3000)
        self.assertEqual(bob.get_attribute("#available", "data-available"), "850.00")
        self.assertIn("Withdraw $150.00", bob.inner_text(row))
        bob.click(f"{row} button:text('Approve')")
        bob.wait_for_selector(f'{row}[data-state="approved"]')
        bob.wait_for_selector('#balance[data-balance="850.00"]')
        self.assertEqual(bob.get_attribute("#available", "data-available"), "850.00")
        self.assertTrue(bob.evaluate("window.notReloaded"), "bob's page was reloaded")

        # Alice's page follows: the balance dropped once, the entry names the approver.
        alice.wait_for_selector('#balance[data-balance="850.00"]', timeout=3000)
        alice.wait_for_selector(f'{row}[data-state="approved"]', timeout=3000)
        entry = LedgerEntry.objects.get(kind="withdrawal")
        alice.wait_for_selector(f"#entry-{entry.pk}")
        self.assertIn("approved by Bob", alice.inner_text(f"#entry-{entry.pk}"))
        self.assertEqual(LedgerEntry.objects.filter(kind="withdrawal").count(), 1)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("850.00"))

    def test_raising_the_threshold_waits_for_bob(self):
        Account.objects.filter(pk=self.account.pk).update(approval_threshold=Decimal("100.00"))
        alice = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        alice.fill("#rules-approval_threshold", "1000")
        alice.click("#rules-form button")
        alice.wait_for_selector("#rules-form .done")
        self.assertIn("waiting for another holder's approval", alice.inner_text("#rules-form"))
        self.assertIn("Approval threshold: $100.00", alice.inner_text("#rules-now"))
        request = ApprovalRequest.objects.get()
        alice.wait_for_selector(f'[data-request-id="{request.pk}"][data-state="pending"]')

    def test_bobs_withdrawal_since_alices_page_loaded_asks_her_to_confirm(self):
        alice = self.sign_in(self.new_page(), "alice@example.com", self.account_url())
        # Bob withdraws while alice's page is open, and her poll has not caught up yet: it is
        # answered "nothing new" meanwhile.
        alice.route("**/balance/?*", lambda route: route.fulfill(status=304))
        self.account.withdraw(Decimal("40.00"), by=self.bob)
        alice.fill("#withdraw-amount", "100")
        alice.click("#withdraw-form button")
        alice.wait_for_selector("#withdraw-error")
        self.assertIn("Bob withdrew $40.00", alice.inner_text("#withdraw-error"))
        self.assertEqual(alice.get_attribute("#balance", "data-balance"), "960.00")
        self.assertEqual(alice.inner_text("#withdraw-form button"), "Withdraw $100.00 anyway")
        alice.click("#withdraw-form button")
        alice.wait_for_selector('#balance[data-balance="860.00"]')
        self.assertEqual(LedgerEntry.objects.filter(kind="withdrawal").count(), 2)
