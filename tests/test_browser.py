"""A smoke test in real Chromium: sign in, deposit, see the balance change without a reload."""

import os
import shutil
from decimal import Decimal

from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from accounts.models import Account
from tests.base import PASSWORD, make_user

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Playwright's sync API runs an event loop in this thread; the live server's ORM calls are
# still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


class BrowserTests(StaticLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(CHROMIUM):
            raise __import__("unittest").SkipTest(
                "Chromium is not installed (apt-get install chromium): browser tests skipped"
            )
        super().setUpClass()
        from playwright.sync_api import sync_playwright

        cls.playwright = sync_playwright().start()
        cls.browser = launch(cls.playwright)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        super().tearDownClass()

    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.account = Account.open("Household", by=self.alice)
        self.account.deposit(Decimal("1000.00"), by=self.alice)

    def test_it_signs_in_deposits_and_shows_the_new_balance_without_reload(self):
        page = self.browser.new_page()
        page.goto(f"{self.live_server_url}/accounts/{self.account.pk}/")
        page.fill("input[name=login]", "alice@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/accounts/{self.account.pk}/")
        page.evaluate("window.notReloaded = true")

        page.fill("#deposit-amount", "100")
        page.click("#deposit-form button")

        page.wait_for_selector('#balance[data-balance="1100.00"]', timeout=5000)
        self.assertTrue(page.evaluate("window.notReloaded"))
        self.assertEqual(page.input_value("#deposit-amount"), "")
        self.assertIn("+$100.00", page.inner_text("#history-rows"))
        page.close()
