"""Sharing under real concurrency: OS processes with their own connections (the harness of
tests/processes.py), released together or lined up behind a held lock."""

from __future__ import annotations

import time
from decimal import Decimal
from functools import partial

from django.db import connection, transaction
from django.test import TransactionTestCase, override_settings

from accounts.errors import AccountError
from accounts.models import Account, Membership
from tests.base import make_user
from tests.processes import CONTEXT, Processes, run_in_processes


def _outcome(barrier, go, action) -> str:
    """Wait for `go` and the others, run `action`: "ok", or the name of the refusal."""
    go.wait(60)
    barrier.wait()
    try:
        action()
    except AccountError as error:
        return type(error).__name__
    return "ok"


def _said(outcome) -> str:
    return outcome if isinstance(outcome, str) else f"unexpected {outcome}"


def at_once(*actions) -> list[str]:
    """Run each action in its own process, all released at the same instant; the outcome of
    each ("ok" or the name of the refusal), sorted."""
    go = CONTEXT.Event()
    go.set()
    return sorted(
        _said(outcome) for outcome in run_in_processes(_outcome, [(go, a) for a in actions])
    )


def behind_a_held_lock(hold, action) -> str:
    """Run `hold` in a transaction here; start `action` in another process, wait until it is
    blocked on one of our locks, then commit. The other process's outcome."""
    go = CONTEXT.Event()
    other = Processes(_outcome, [(go, action)])
    with transaction.atomic():
        hold()
        go.set()
        _wait_until_someone_waits_for_a_lock()
    return _said(other.results()[0])


def _wait_until_someone_waits_for_a_lock(timeout=20.0):
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the other process never waited for the lock")


class ConcurrentAcceptTests(TransactionTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.bob = make_user("bob@example.com")
        self.dave = make_user("dave@example.com")
        self.erin = make_user("erin@example.com")

    def test_two_accepts_of_one_invitation_make_one_membership(self):
        for _ in range(3):  # a few rounds: each is a fresh race
            account = Account.open("Household", by=self.alice)
            invitation, _ = account.invite("dave@example.com", by=self.alice)

            outcomes = at_once(
                partial(invitation.accept, self.dave), partial(invitation.accept, self.dave)
            )

            self.assertEqual(outcomes, ["InvitationNotPending", "ok"])
            self.assertEqual(Membership.objects.filter(account=account, user=self.dave).count(), 1)
            invitation.refresh_from_db()
            self.assertEqual(invitation.state, "accepted")

    def test_two_accepts_cannot_pass_the_holder_limit(self):
        for _ in range(3):
            account = Account.open("Household", by=self.alice)
            account.add_holder(self.bob)
            to_dave, _ = account.invite("dave@example.com", by=self.alice)
            to_erin, _ = account.invite("erin@example.com", by=self.alice)

            with override_settings(JOINTBANK_MAX_HOLDERS=3):  # room for one of them
                outcomes = at_once(
                    partial(to_dave.accept, self.dave), partial(to_erin.accept, self.erin)
                )

            self.assertEqual(outcomes, ["HolderLimitReached", "ok"])
            self.assertEqual(account.memberships.current().count(), 3)


class ChangeBehindMembershipChangeTests(TransactionTestCase):
    """A balance change that was already waiting when a holder left or the account was
    closed must see that change: the check runs under the same lock as the change."""

    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.bob = make_user("bob@example.com")
        self.account = Account.open("Household", by=self.alice)

    def test_a_deposit_waiting_while_its_holder_leaves_is_refused(self):
        self.account.add_holder(self.bob)
        self.account.deposit(Decimal("100.00"), by=self.bob)
        account = self.account

        outcome = behind_a_held_lock(
            lambda: account.leave(by=self.bob),
            lambda: Account(pk=account.pk).withdraw(Decimal("100.00"), by=self.bob),
        )

        self.assertEqual(outcome, "NotAHolder")
        account.refresh_from_db()
        self.assertEqual(account.balance, Decimal("100.00"))

    def test_a_deposit_waiting_while_the_account_closes_is_refused(self):
        account = self.account

        outcome = behind_a_held_lock(
            lambda: account.close(by=self.alice),
            lambda: Account(pk=account.pk).deposit(Decimal("5.00"), by=self.alice),
        )

        self.assertEqual(outcome, "AccountClosed")
        account.refresh_from_db()
        self.assertEqual((account.balance, account.entries.count()), (Decimal("0.00"), 0))

    def test_two_holders_leaving_at_once_leave_one_holder(self):
        self.account.add_holder(self.bob)
        account = self.account

        outcomes = at_once(
            lambda: Account(pk=account.pk).leave(by=self.alice),
            lambda: Account(pk=account.pk).leave(by=self.bob),
        )

        self.assertEqual(sorted(outcomes), ["LastHolder", "ok"])
        self.assertEqual(account.memberships.current().count(), 1)

    def test_a_close_waiting_behind_a_deposit_sees_the_money(self):
        account = self.account

        outcome = behind_a_held_lock(
            lambda: Account(pk=account.pk).deposit(Decimal("5.00"), by=self.alice),
            lambda: Account(pk=account.pk).close(by=self.alice),
        )

        self.assertEqual(outcome, "BalanceNotZero")
        account.refresh_from_db()
        self.assertEqual((account.balance, account.closed_at), (Decimal("5.00"), None))
