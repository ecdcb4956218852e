"""The whole sharing story in real Chromium: alice alone → alice invites bob → bob signs in
from the e-mailed link and accepts → bob leaves → alice empties and closes the account."""

from __future__ import annotations

import re
from decimal import Decimal

from django.core import mail

from accounts.models import Account
from tests.base import PASSWORD, make_user
from tests.browser import ChromiumTestCase


class SharingInTheBrowserTests(ChromiumTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.bob = make_user("bob@example.com")
        self.account = Account.open("Household", by=self.alice)
        self.account.deposit(Decimal("25.00"), by=self.alice)

    def sign_in(self, page, email, path):
        page.goto(f"{self.live_server_url}{path}")
        page.fill("input[name=login]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**{path}")

    def test_alice_and_bob_share_then_bob_leaves_and_alice_closes(self):
        detail = f"/accounts/{self.account.pk}/"
        alice = self.browser.new_context().new_page()
        alice.on("dialog", lambda dialog: dialog.accept())  # the hx-confirm questions
        self.sign_in(alice, "alice@example.com", detail)
        alice.evaluate("window.notReloaded = true")

        alice.fill("#invite-email", "bob@example.com")
        alice.click("#invite-form button")
        alice.wait_for_selector("text=Invitation sent to bob@example.com", timeout=5000)
        self.assertTrue(alice.evaluate("window.notReloaded"))
        self.assertIn("bob@example.com", alice.inner_text(".invitations"))
        link = re.search(r"http://\S+/accounts/invitations/\S+/", mail.outbox[-1].body)[0]
        link = link.replace("http://testserver", self.live_server_url)

        bob = self.browser.new_context().new_page()
        bob.on("dialog", lambda dialog: dialog.accept())
        bob.goto(link)  # signed out: sign-in first, then back to the invitation
        bob.fill("input[name=login]", "bob@example.com")
        bob.fill("input[name=password]", PASSWORD)
        bob.click("button[type=submit]")
        bob.wait_for_selector("text=invites you to become a holder", timeout=5000)
        bob.click("text=Accept")
        bob.wait_for_url(f"**{detail}")
        self.assertIn("You are now a holder of Household", bob.inner_text(".messages"))
        self.assertIn("alice@example.com", bob.inner_text("#sharing"))

        bob.click("#leave-link")  # the confirmation first, with what he put in
        self.assertIn("Your net contribution is +$0.00", bob.inner_text("#your-net"))
        bob.click("#leave-form button")
        bob.wait_for_url("**/accounts/")
        self.assertIn("You left Household", bob.inner_text(".messages"))

        alice.reload()
        alice.fill("#withdraw-amount", "25.00")
        alice.click("#withdraw-form button")
        alice.wait_for_selector('#balance[data-balance="0.00"]', timeout=5000)
        alice.reload()  # Bob left: the page now offers "Close"
        alice.click("#close-form button")
        alice.wait_for_selector(".closed-note", timeout=5000)
        self.assertEqual(alice.locator("#deposit-form").count(), 0)

        self.account.refresh_from_db()
        self.assertIsNotNone(self.account.closed_at)
        holders = self.account.memberships.current().values_list("user__email", flat=True)
        self.assertEqual(list(holders), ["alice@example.com"])
        alice.context.close()
        bob.context.close()
