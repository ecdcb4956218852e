"""Every page in Chromium: no console errors, no CSP violations; and the README's screenshots."""

from __future__ import annotations

import os
import tempfile
from decimal import Decimal
from pathlib import Path

from accounts.tasks import post_monthly_interest
from tests.base import PASSWORD, empty_the_queue, give_authenticator, make_staff, make_user, totp
from tests.browser import DESKTOP, PHONE, BrowserTestCase, give_history

ROOT = Path(__file__).resolve().parent.parent


class EveryPageTests(BrowserTestCase):
    def visit(self, page, path):
        response = page.goto(self.url(path))
        self.assertLess(response.status, 400, path)
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # htmx initialises; a CSP violation would surface here

    def test_signed_out_pages_are_clean(self):
        page = self.new_page()
        for path in ("/auth/login/", "/auth/signup/", "/auth/password/reset/"):
            self.visit(page, path)

    def test_a_holders_pages_are_clean(self):
        give_history(self.account, [self.alice, self.bob])
        page = self.sign_in(self.new_page(), "alice@example.com")
        oldest_shown = self.account.entries.order_by("-pk")[24].pk
        for path in (
            "/accounts/",
            f"/accounts/{self.account.pk}/",
            f"/accounts/{self.account.pk}/history/?before={oldest_shown}",
            "/auth/2fa/",
            "/auth/email/",
            "/auth/password/change/",
            "/auth/reauthenticate/",
        ):
            self.visit(page, path)
        # Setting up an authenticator shows a QR code (an inline data: image).
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.click("main form button[type=submit]")
        self.visit(page, "/auth/2fa/totp/activate/")
        self.assertTrue(page.locator("img[src^='data:image/svg+xml']").is_visible())
        # And the money forms and the poller at work on the account page.
        self.visit(page, f"/accounts/{self.account.pk}/")
        page.fill("#deposit-amount", "12.34")
        page.click("#deposit-form button")
        page.wait_for_selector("#deposit-form .done")
        page.wait_for_timeout(2500)  # at least one poll

    def test_an_invitation_is_clean(self):
        carol = make_user("carol@example.com")
        invitation, token = self.account.invite("carol@example.com", by=self.alice)
        page = self.sign_in(self.new_page(), carol.email)
        self.visit(page, f"/accounts/invitations/{invitation.pk}/{token}/")
        self.assertIn("Household", page.inner_text("main"))

    def test_the_admin_is_clean(self):
        staff = make_staff("admin@example.com")
        secret = give_authenticator(staff)
        self.addCleanup(empty_the_queue)
        job = post_monthly_interest.defer(timestamp=1769904000)
        page = self.new_page()
        # The admin's sign-in is allauth's, with the two-factor step.
        self.visit(page, "/admin/")
        self.assertIn("/auth/login/", page.url)
        page.fill("input[name=login]", staff.email)
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.click("main form button[type=submit]")
        self.assertIn("/auth/2fa/authenticate/", page.url)
        page.fill("input[name=code]", totp(secret))
        with page.expect_navigation():
            page.click("main form button[type=submit]")
        for path in (
            "/admin/",
            f"/admin/accounts/account/{self.account.pk}/change/",
            f"/admin/accounts/account/{self.account.pk}/correct/",
            "/admin/accounts/ledgerentry/",
            "/admin/procrastinate/procrastinatejob/",
            f"/admin/procrastinate/procrastinatejob/{job}/change/",
        ):
            self.visit(page, path)

    def test_the_watch_catches_a_violation(self):
        # The guard of the tests above, shown able to fail: an injected inline script.
        page = self.new_page()
        self.visit(page, "/auth/login/")
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.ran = true'; document.body.append(s); }"
        )
        page.wait_for_timeout(300)
        self.assertFalse(page.evaluate("window.ran === true"), "CSP let an inline script run")
        self.assertTrue(any("script-src" in problem for problem in self.problems))
        self.problems.clear()


class ScreenshotTests(BrowserTestCase):
    """Writes the README's screenshots with `make screenshots`; elsewhere to a temporary
    directory, so that the code that takes them keeps working."""

    def test_it_takes_the_sign_in_accounts_and_account_pages_at_two_widths(self):
        give_history(self.account, [self.alice, self.bob])
        # A request of Bob's waiting for Alice: on her accounts page and the account page.
        self.account.set_rules(Decimal("500.00"), None, by=self.alice)
        self.account.withdraw(Decimal("640.00"), by=self.bob, memo="New sofa")
        target = os.environ.get("JOINTBANK_SCREENSHOTS")
        directory = Path(target) if target else Path(tempfile.mkdtemp())
        directory.mkdir(parents=True, exist_ok=True)
        for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page = self.new_page(viewport=viewport, device_scale_factor=1)
            page.goto(self.url("/auth/login/"))
            page.screenshot(path=directory / f"sign-in-{name}.png", full_page=True)
            self.sign_in(page, "alice@example.com")
            page.goto(self.url("/accounts/"))
            page.screenshot(path=directory / f"accounts-{name}.png", full_page=True)
            page.goto(self.account_url())
            page.screenshot(path=directory / f"account-{name}.png", full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            self.assertLessEqual(width, viewport["width"], "no sideways scrolling")
        for shot in directory.glob("*.png"):
            self.assertEqual(shot.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(len(list(directory.glob("*.png"))), 6)
