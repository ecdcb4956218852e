"""Busy accounts fail fast: a request that cannot get the row lock answers 409 in about
JOINTBANK_LOCK_TIMEOUT, never hangs, and writes nothing."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

from django.core.cache import cache
from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings
from django.urls import reverse

from accounts.approvals import ApprovalRequest
from accounts.errors import AccountBusy
from accounts.models import Account, InterestPosting, Invitation, LedgerEntry, Membership
from tests.base import HX, give_authenticator, make_staff, make_user, sign_in_with_two_factor
from tests.processes import CONTEXT, Processes

LOCK_TIMEOUT = 0.5


def hold_lock(barrier, account_pk, locked, release):
    """Another process takes the account's row lock and keeps it until told."""
    with Account(pk=account_pk).lock():
        locked.set()
        release.wait(60)
    return "released"


@override_settings(JOINTBANK_LOCK_TIMEOUT=f"{int(LOCK_TIMEOUT * 1000)}ms")
class HeldLockTestCase(TransactionTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.account = Account.open("Household", by=self.alice)
        self.account.deposit(Decimal("1000.00"), by=self.alice)
        self.savings = Account.open("Savings", by=self.alice)
        self.client.force_login(self.alice)

    def while_locked(self, account, request):
        """Run `request` while another OS process holds `account`'s row lock; return the
        response and how long it took."""
        locked, release = CONTEXT.Event(), CONTEXT.Event()
        holder = Processes(hold_lock, [(account.pk, locked, release)])
        try:
            self.assertTrue(locked.wait(30), "the other process never got the lock")
            began = time.monotonic()
            response = request()
            waited = time.monotonic() - began
        finally:
            release.set()
            self.assertEqual(holder.results(), ["released"])
        return response, waited


class LockTimeoutTests(HeldLockTestCase):
    def test_a_deposit_behind_a_held_lock_answers_409_after_the_lock_timeout(self):
        key = str(uuid.uuid4())
        url = f"/accounts/{self.account.pk}/deposit/"
        data = {"amount": "10.00", "idempotency_key": key}
        response, waited = self.while_locked(
            self.account, lambda: self.client.post(url, data, **HX)
        )

        self.assertContains(response, "This account is busy, please retry", status_code=409)
        self.assertEqual(response["Retry-After"], "1")
        # It waited for the lock timeout, then gave up: neither instantly nor for ever.
        self.assertGreaterEqual(waited, LOCK_TIMEOUT)
        self.assertLess(waited, LOCK_TIMEOUT + 2.5)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("1000.00"))
        self.assertFalse(LedgerEntry.objects.filter(idempotency_key=key).exists())

        # Nothing was written, so the same request (same key) simply works once the lock is gone.
        self.assertEqual(self.client.post(url, data, **HX).status_code, 200)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("1010.00"))

    def test_a_plain_form_post_gets_the_page_with_the_message(self):
        url = f"/accounts/{self.account.pk}/withdraw/"
        response, _ = self.while_locked(
            self.account, lambda: self.client.post(url, {"amount": "1.00"})
        )
        self.assertContains(response, "This account is busy, please retry", status_code=409)
        self.assertContains(response, "<html", status_code=409)
        self.assertEqual(response["Retry-After"], "1")

    def test_a_transfer_to_a_locked_account_answers_409_and_moves_nothing(self):
        url = f"/accounts/{self.account.pk}/transfer/"
        data = {"to_account": self.savings.pk, "amount": "10.00"}
        response, waited = self.while_locked(
            self.savings, lambda: self.client.post(url, data, **HX)
        )

        self.assertContains(response, "This account is busy", status_code=409)
        self.assertGreaterEqual(waited, LOCK_TIMEOUT)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("1000.00"))
        self.assertEqual(LedgerEntry.objects.filter(kind="transfer_out").count(), 0)

    def test_without_the_lock_timeout_the_request_would_wait_for_the_holder(self):
        # Shows the tests above can fail: with lock_timeout off, the request waits until the
        # other process lets go (here after 2 s) instead of answering at LOCK_TIMEOUT.
        locked, release = CONTEXT.Event(), CONTEXT.Event()
        holder = Processes(hold_lock, [(self.account.pk, locked, release)])
        self.assertTrue(locked.wait(30))
        threading.Timer(2.0, release.set).start()
        began = time.monotonic()
        with override_settings(JOINTBANK_LOCK_TIMEOUT="0"):
            self.account.deposit(Decimal("1.00"), by=self.alice)
        self.assertGreaterEqual(time.monotonic() - began, 1.9)
        self.assertEqual(holder.results(), ["released"])


def snapshot() -> tuple:
    """Everything a locking path could write: balances, holds and rules, ledger, memberships,
    invitations, approval requests."""
    columns = ["pk", "balance", "held", "approval_threshold", "version", "closed_at"]
    return (
        list(Account.objects.order_by("pk").values_list(*columns)),
        list(ApprovalRequest.objects.order_by("pk").values_list("pk", "state")),
        LedgerEntry.objects.count(),
        list(Membership.objects.order_by("pk").values_list("pk", "left_at")),
        list(Invitation.objects.order_by("pk").values_list("pk", "state")),
    )


class EveryLockingPathTests(HeldLockTestCase):
    """Each path that reads-then-writes an account, from the pages and from the admin, with
    another OS process holding the account's row lock: 409 with Retry-After within the lock
    timeout plus a second, and nothing written."""

    def setUp(self):
        super().setUp()
        self.bob = make_user("bob@example.com")
        self.dave = make_user("dave@example.com")
        self.account.add_holder(self.bob)
        self.pending, _ = self.account.invite("erin@example.com", by=self.alice)
        self.to_dave, self.token = self.account.invite("dave@example.com", by=self.alice)
        self.savings.deposit(Decimal("10.00"), by=self.alice)
        self.empty = Account.open("Empty", by=self.alice)  # closable: one holder, no money
        # alice's withdrawal above the threshold waits for bob.
        self.account.set_rules(Decimal("100.00"), None, by=self.alice)
        self.waiting = self.account.withdraw(Decimal("150.00"), by=self.alice)
        self.admin = make_staff("root@example.com")

    def assert_busy(self, account, url, data, htmx=True):
        before = snapshot()
        headers = HX if htmx else {}
        response, waited = self.while_locked(
            account, lambda: self.client.post(url, data, **headers)
        )
        self.assertEqual(response.status_code, 409)
        self.assertContains(response, "busy", status_code=409)
        self.assertEqual(response["Retry-After"], "1")
        self.assertLess(waited, LOCK_TIMEOUT + 1)
        self.assertEqual(snapshot(), before)

    def test_every_holder_path_answers_409_and_writes_nothing(self):
        pk, request = self.account.pk, self.waiting.pk
        paths = [
            ("deposit", self.account, self.alice, f"/accounts/{pk}/deposit/", {"amount": "1.00"}),
            ("withdraw", self.account, self.alice, f"/accounts/{pk}/withdraw/", {"amount": "1.00"}),
            (
                "transfer out",
                self.account,
                self.alice,
                f"/accounts/{pk}/transfer/",
                {"to_account": self.savings.pk, "amount": "1.00"},
            ),
            (
                "transfer in",
                self.account,
                self.alice,
                f"/accounts/{self.savings.pk}/transfer/",
                {"to_account": pk, "amount": "1.00"},
            ),
            ("invite", self.account, self.alice, f"/accounts/{pk}/invite/", {"email": "f@x.org"}),
            (
                "revoke",
                self.account,
                self.alice,
                f"/accounts/{pk}/invitations/{self.pending.pk}/revoke/",
                {},
            ),
            ("leave", self.account, self.bob, f"/accounts/{pk}/leave/", {}),
            (
                "rules",
                self.account,
                self.alice,
                f"/accounts/{pk}/rules/",
                {"approval_threshold": "50", "daily_limit": ""},
            ),
            ("approve", self.account, self.bob, f"/accounts/{pk}/requests/{request}/approve/", {}),
            ("reject", self.account, self.bob, f"/accounts/{pk}/requests/{request}/reject/", {}),
            ("cancel", self.account, self.alice, f"/accounts/{pk}/requests/{request}/cancel/", {}),
            ("close", self.empty, self.alice, f"/accounts/{self.empty.pk}/close/", {}),
            (
                "accept",
                self.account,
                self.dave,
                reverse("accounts:accept", args=[self.to_dave.pk, self.token]),
                {},
            ),
        ]
        for label, account, user, url, data in paths:
            for htmx in (True, False):
                with self.subTest(label, htmx=htmx):
                    self.client.force_login(user)
                    self.assert_busy(account, url, data, htmx=htmx)

    def test_every_admin_path_answers_409_and_writes_nothing(self):
        cache.clear()  # allauth's sign-in rate limits, kept in the cache table between tests
        self.client.logout()
        sign_in_with_two_factor(self.client, self.admin, give_authenticator(self.admin))
        membership = self.account.memberships.get(user=self.bob)
        paths = [
            (
                "correction",
                reverse("admin:accounts_account_correct", args=[self.account.pk]),
                {"kind": "deposit", "amount": "1.00"},
            ),
            (
                "add holder",
                reverse("admin:accounts_membership_add"),
                {"account": self.account.pk, "user": self.dave.pk},
            ),
            (
                "end memberships",
                reverse("admin:accounts_membership_changelist"),
                {"action": "end_memberships", "_selected_action": [membership.pk]},
            ),
            (
                "revoke invitations",
                reverse("admin:accounts_invitation_changelist"),
                {"action": "revoke", "_selected_action": [self.pending.pk, self.to_dave.pk]},
            ),
        ]
        for label, url, data in paths:
            with self.subTest(label):
                self.assert_busy(self.account, url, data, htmx=False)
        # Not one "revoked" or "membership ended" message for what was rolled back.
        page = self.client.get(reverse("admin:accounts_invitation_changelist"))
        self.assertNotContains(page, "revoked.")

    def test_interest_answers_busy_and_posts_nothing(self):
        before = snapshot()
        _, waited = self.while_locked(
            self.account,
            lambda: self.assertRaises(
                AccountBusy, self.account.post_interest, "2026-01", Decimal("0.02"), by=self.alice
            ),
        )
        self.assertLess(waited, LOCK_TIMEOUT + 1)
        self.assertEqual(snapshot(), before)
        self.assertFalse(InterestPosting.objects.exists())


class StatementTimeoutTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = make_user("alice@example.com")
        cls.account = Account.open("Household", by=cls.alice)

    def test_a_money_transaction_that_runs_too_long_is_cancelled_and_answers_409(self):
        # A slow insert (a stand-in for any stall while the lock is held).
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$;"
                "CREATE TRIGGER test_slow BEFORE INSERT ON accounts_ledgerentry "
                "FOR EACH ROW EXECUTE FUNCTION test_slow()"
            )
        self.client.force_login(self.alice)
        began = time.monotonic()
        with override_settings(JOINTBANK_STATEMENT_TIMEOUT="300ms"):
            response = self.client.post(
                f"/accounts/{self.account.pk}/deposit/", {"amount": "1.00"}, **HX
            )
            with self.assertRaises(AccountBusy):
                self.account.deposit(Decimal("1.00"), by=self.alice)
        self.assertLess(time.monotonic() - began, 4)
        self.assertContains(response, "This account is busy", status_code=409)
        self.assertEqual(Account.objects.get(pk=self.account.pk).balance, Decimal("0.00"))


class IdleInTransactionTests(TestCase):
    def test_the_apps_connections_end_sessions_left_idle_in_a_transaction(self):
        with connection.cursor() as cursor:
            cursor.execute("SHOW idle_in_transaction_session_timeout")
            self.assertEqual(cursor.fetchone()[0], "30s")
