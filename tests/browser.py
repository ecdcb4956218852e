"""The browser suite's base: Debian's Chromium driven by Playwright against the live server.

Every page a test opens is watched: a console error, an uncaught exception or a
Content-Security-Policy violation fails the test when it ends.
"""

from __future__ import annotations

import os
import shutil
import unittest
from decimal import Decimal

from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.cache import cache

from accounts.models import Account
from tests.base import PASSWORD, make_user

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# (fixtures, checks) are still plain synchronous calls and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# Runs in every page before its own scripts and reports each CSP violation to the test.
WATCH_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(event.violatedDirective + " " + event.blockedURI);
});
"""


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
            "--font-render-hinting=none",
        ],
    )


class ChromiumTestCase(StaticLiveServerTestCase):
    """A live server and one Chromium for the whole class (skipped where Chromium is absent)."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(CHROMIUM):
            raise unittest.SkipTest(
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


class BrowserTestCase(ChromiumTestCase):
    """alice and bob hold "Household" with $1000.00 (created fresh for every test)."""

    # Console messages a test expects, e.g. the 422 of a bad amount it enters on purpose.
    expected_console = ()

    def setUp(self):
        cache.clear()  # allauth's rate limits, kept in the cache table between tests
        self.alice = make_user("alice@example.com", "Alice")
        self.bob = make_user("bob@example.com", "Bob")
        self.account = Account.open("Household", by=self.alice)
        self.account.memberships.create(user=self.bob)
        self.account.deposit(Decimal("1000.00"), by=self.alice)
        self.problems = []
        self.pages = []

    def tearDown(self):
        # What the pages reported while the test ran; closing them mid-poll could add noise.
        problems = list(self.problems)
        for page in self.pages:
            page.context.close()
        self.assertEqual(problems, [], "console errors or CSP violations")

    def new_page(self, viewport=DESKTOP, **context_options):
        context = self.browser.new_context(viewport=viewport, **context_options)
        context.expose_binding(
            "reportCspViolation",
            lambda source, text: self.problems.append(f"{source['page'].url}: CSP: {text}"),
        )
        context.add_init_script(WATCH_CSP)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: {error}"))
        self.pages.append(page)
        return page

    def _console(self, page, message):
        if message.type in ("error", "warning") and not any(
            expected in message.text for expected in self.expected_console
        ):
            where = message.location.get("url", "")
            self.problems.append(f"{page.url}: console {message.type}: {message.text} {where}")

    def url(self, path: str) -> str:
        return self.live_server_url + path

    def account_url(self, suffix: str = "") -> str:
        return self.url(f"/accounts/{self.account.pk}/{suffix}")

    def sign_in(self, page, email: str, next_path: str | None = None):
        page.goto(self.url("/auth/login/" + (f"?next={next_path}" if next_path else "")))
        page.fill("input[name=login]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("main form button[type=submit]")
        page.wait_for_url(lambda url: "/auth/login/" not in url)
        return page


def give_history(account, holders, days: int = 90):
    """A believable quarter of joint spending: salaries in, rent and shopping out.

    Entries are written through the locked methods, then dated back (tests/backdate.py).
    """
    from datetime import timedelta

    from django.utils import timezone

    from tests.backdate import backdate

    now = timezone.now()
    dates = {entry.pk: now - timedelta(days=days + 1) for entry in account.entries.all()}
    plan = []
    for day in range(days, 0, -1):
        if day % 30 == 15:
            plan += [
                (day, 9, "deposit", "2450.00", 0, "Salary"),
                (day, 10, "deposit", "1980.00", 1, "Salary"),
            ]
        if day % 30 == 14:
            plan.append((day, 8, "withdraw", "1650.00", 0, "Rent"))
        if day % 7 == 3:
            amount = f"{84 + day % 5 * 13}.{day % 10}5"
            plan.append((day, 18, "withdraw", amount, day % 2, "Groceries"))
        if day % 11 == 4:
            memo = ("Pharmacy", "Cinema", "Train tickets", "Dinner out")[day % 4]
            plan.append((day, 20, "withdraw", f"{23 + day % 4 * 9}.40", 1 - day % 2, memo))
    for day, hour, kind, amount, who, memo in plan:
        entry = getattr(account, kind)(Decimal(amount), by=holders[who], memo=memo)
        dates[entry.pk] = (now - timedelta(days=day)).replace(hour=hour, minute=day % 60)
    backdate(account, dates)
