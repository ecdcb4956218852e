"""Transfers, double clicks and a busy account in real Chromium."""

from __future__ import annotations

import threading
from decimal import Decimal

from django.db import connections, transaction
from django.test import override_settings

from accounts.models import Account, LedgerEntry
from tests.base import PASSWORD, make_user
from tests.browser import ChromiumTestCase


class MoneyBrowserTests(ChromiumTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.account = Account.open("Household", by=self.alice)
        self.account.deposit(Decimal("1000.00"), by=self.alice)
        self.savings = Account.open("Savings", by=self.alice)

    def signed_in_page(self):
        page = self.browser.new_page()
        page.goto(f"{self.live_server_url}/accounts/{self.account.pk}/")
        page.fill("input[name=login]", "alice@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/accounts/{self.account.pk}/")
        page.evaluate("window.notReloaded = true")
        return page

    def test_it_transfers_between_the_users_accounts_without_reload(self):
        page = self.signed_in_page()
        page.select_option("#transfer-to_account", str(self.savings.pk))
        page.fill("#transfer-amount", "250.25")
        page.click("#transfer-form button")

        page.wait_for_selector('#balance[data-balance="749.75"]', timeout=5000)
        self.assertIn("Transferred $250.25 to Savings.", page.inner_text("#transfer-form"))
        self.assertIn("Transfer to Savings", page.inner_text("#history-rows"))
        self.assertTrue(page.evaluate("window.notReloaded"))
        self.assertEqual(Account.objects.get(pk=self.savings.pk).balance, Decimal("250.25"))
        page.close()

    def test_a_double_click_deposits_once(self):
        page = self.signed_in_page()
        page.fill("#deposit-amount", "10")
        page.dblclick("#deposit-form button")

        page.wait_for_selector('#balance[data-balance="1010.00"]', timeout=5000)
        page.wait_for_timeout(500)  # room for a second request, were one sent
        self.assertEqual(LedgerEntry.objects.filter(kind="deposit").count(), 2)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("1010.00"))
        page.close()

    @override_settings(JOINTBANK_LOCK_TIMEOUT="300ms")
    def test_a_busy_account_says_so_and_the_same_click_works_afterwards(self):
        page = self.signed_in_page()
        locked, release = threading.Event(), threading.Event()

        def hold_the_lock():
            try:
                with transaction.atomic():
                    Account.objects.select_for_update().get(pk=self.account.pk)
                    locked.set()
                    release.wait(30)
            finally:
                connections.close_all()

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        try:
            self.assertTrue(locked.wait(10))
            page.fill("#withdraw-amount", "5")
            page.click("#withdraw-form button")
            page.wait_for_selector("#withdraw-form .error", timeout=5000)
            self.assertIn("This account is busy, please retry", page.inner_text("#withdraw-form"))
        finally:
            release.set()
            holder.join()
        page.click("#withdraw-form button")  # the same form, the same key
        page.wait_for_selector('#balance[data-balance="995.00"]', timeout=5000)
        self.assertEqual(LedgerEntry.objects.filter(kind="withdrawal").count(), 1)
        page.close()
