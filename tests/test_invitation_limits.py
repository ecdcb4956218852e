"""Invitation e-mails and accounts are limited per person: invitations per holder per hour and
per address per day (429 with Retry-After, nothing sent), accounts per user (422), counted
correctly when the requests arrive at the same instant in different processes."""

from __future__ import annotations

from datetime import timedelta

from django.core import mail
from django.test import SimpleTestCase, TransactionTestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, Invitation
from tests.base import HX, JointAccountTestCase, make_user
from tests.processes import Raised, run_in_processes
from tests.test_settings import check


@override_settings(
    JOINTBANK_INVITATIONS_PER_HOLDER_PER_HOUR=3, JOINTBANK_INVITATIONS_PER_ADDRESS_PER_DAY=2
)
class InvitationRateLimitTests(JointAccountTestCase):
    def invite(self, email: str, account=None, **headers):
        url = reverse("accounts:invite", args=[(account or self.account).pk])
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(url, {"email": email}, **headers)

    def revoke_all(self):
        for invitation in Invitation.objects.filter(state="pending"):
            self.account.revoke(invitation, by=self.alice)

    def sent_at(self, minutes_ago: int) -> None:
        """Date every invitation so far back by this many minutes."""
        Invitation.objects.update(created_at=timezone.now() - timedelta(minutes=minutes_ago))

    def test_a_holder_over_the_hourly_limit_gets_429_with_retry_after_and_nothing_is_sent(self):
        for email in ("a@example.com", "b@example.com", "c@example.com"):
            self.assertEqual(self.invite(email).status_code, 303)
        self.sent_at(minutes_ago=20)
        for headers in ({}, HX):
            with self.subTest(htmx=bool(headers)):
                response = self.invite("d@example.com", **headers)
                self.assertContains(
                    response,
                    "You have sent 3 invitations in the last hour, the most allowed. "
                    "Try again after",
                    status_code=429,
                )
                # The oldest of the three leaves the hour in 40 minutes.
                self.assertAlmostEqual(int(response["Retry-After"]), 40 * 60, delta=5)
        self.assertEqual(Invitation.objects.count(), 3)
        self.assertEqual(len(mail.outbox), 3)

    def test_revoked_invitations_count_and_the_hour_passes(self):
        # Invite and revoke in a loop is the flood the limit is for.
        for email in ("a@example.com", "b@example.com", "c@example.com"):
            self.invite(email)
            self.revoke_all()
        self.assertEqual(self.invite("d@example.com").status_code, 429)
        self.sent_at(minutes_ago=61)
        self.assertEqual(self.invite("d@example.com").status_code, 303)

    def test_the_holder_limit_counts_every_account_and_not_other_holders(self):
        other = Account.open("Trip", by=self.alice)
        self.invite("a@example.com")
        self.invite("b@example.com", account=other)
        self.invite("c@example.com")
        self.assertEqual(self.invite("d@example.com", account=other).status_code, 429)
        # Bob, on the same account, has his own hourly allowance.
        self.client.force_login(self.bob)
        self.assertEqual(self.invite("d@example.com").status_code, 303)

    def test_an_address_gets_at_most_so_many_invitations_a_day_from_anyone(self):
        self.invite("dave@example.com")
        self.revoke_all()
        self.client.force_login(self.carol)
        carols = Account.open("Carol's", by=self.carol)
        self.invite("dave@example.com", account=carols)
        Invitation.objects.update(state="revoked")
        self.sent_at(minutes_ago=23 * 60)
        response = self.invite("DAVE@example.com", account=carols)
        self.assertContains(
            response,
            "dave@example.com has been sent 2 invitations in the last 24 hours, the most allowed.",
            status_code=429,
        )
        self.assertAlmostEqual(int(response["Retry-After"]), 60 * 60, delta=5)
        self.assertEqual(Invitation.objects.count(), 2)
        self.assertEqual(len(mail.outbox), 2)
        self.sent_at(minutes_ago=24 * 60 + 1)
        self.assertEqual(self.invite("dave@example.com", account=carols).status_code, 303)


@override_settings(JOINTBANK_MAX_ACCOUNTS_PER_USER=3)
class AccountLimitTests(JointAccountTestCase):
    def open(self, **headers):
        return self.client.post(reverse("accounts:create"), {"name": "Another"}, **headers)

    def test_one_account_more_than_the_limit_is_422_with_a_message(self):
        Account.open("Trip", by=self.alice)
        self.assertEqual(self.open().status_code, 303)  # Household, Trip and this one
        for headers in ({}, HX):
            with self.subTest(htmx=bool(headers)):
                response = self.open(**headers)
                self.assertContains(
                    response, "You already hold 3 open accounts, the most allowed.", status_code=422
                )
        self.assertEqual(Account.objects.held_by(self.alice).count(), 3)

    def test_closed_accounts_do_not_count(self):
        trip = Account.open("Trip", by=self.alice)
        Account.open("Car", by=self.alice)
        self.assertEqual(self.open().status_code, 422)
        trip.close(by=self.alice)
        self.assertEqual(self.open().status_code, 303)


class DefaultLimitTests(SimpleTestCase):
    def test_the_documented_defaults(self):
        from jointbank import settings  # the module as configured, without test overrides

        self.assertEqual(
            (
                settings.JOINTBANK_INVITATIONS_PER_HOLDER_PER_HOUR,
                settings.JOINTBANK_INVITATIONS_PER_ADDRESS_PER_DAY,
                settings.JOINTBANK_MAX_ACCOUNTS_PER_USER,
            ),
            (10, 3, 20),
        )

    def test_a_limit_that_is_not_a_whole_number_of_at_least_1_is_refused_at_start(self):
        for value in ("0", "-1", "ten", "1.5", "٣"):
            with self.subTest(value=value):
                result = check(DJANGO_DEBUG="1", JOINTBANK_MAX_ACCOUNTS_PER_USER=value)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(
                    "JOINTBANK_MAX_ACCOUNTS_PER_USER must be a whole number", result.stderr
                )


def invite_at_once(barrier, account_pk, inviter_pk, email):
    from django.contrib.auth import get_user_model

    account = Account.objects.get(pk=account_pk)
    inviter = get_user_model().objects.get(pk=inviter_pk)
    barrier.wait()
    account.invite(email, by=inviter)
    return "sent"


def open_at_once(barrier, user_pk):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(pk=user_pk)
    barrier.wait()
    Account.open("Race", by=user)
    return "opened"


def outcomes(results) -> list[str]:
    return sorted(r.name if isinstance(r, Raised) else r for r in results)


class LimitsUnderConcurrencyTests(TransactionTestCase):
    """Six processes released at one instant: each limit lets exactly as many through as it
    allows, although each request is on an account (or creates one) that no other one locks."""

    @override_settings(JOINTBANK_INVITATIONS_PER_HOLDER_PER_HOUR=3)
    def test_a_holder_inviting_from_six_accounts_at_once(self):
        alice = make_user("alice@example.com")
        accounts = [Account.open(f"Account {n}", by=alice) for n in range(6)]
        calls = [(a.pk, alice.pk, f"friend{n}@example.com") for n, a in enumerate(accounts)]
        results = run_in_processes(invite_at_once, calls)
        self.assertEqual(outcomes(results), ["HolderInvitationLimit"] * 3 + ["sent"] * 3)
        self.assertEqual(Invitation.objects.count(), 3)

    @override_settings(JOINTBANK_INVITATIONS_PER_ADDRESS_PER_DAY=3)
    def test_six_holders_inviting_one_address_at_once(self):
        calls = []
        for n in range(6):
            holder = make_user(f"holder{n}@example.com")
            calls.append(
                (Account.open(f"Account {n}", by=holder).pk, holder.pk, "dave@example.com")
            )
        results = run_in_processes(invite_at_once, calls)
        self.assertEqual(outcomes(results), ["AddressInvitationLimit"] * 3 + ["sent"] * 3)
        self.assertEqual(Invitation.objects.filter(email="dave@example.com").count(), 3)

    @override_settings(JOINTBANK_MAX_ACCOUNTS_PER_USER=3)
    def test_one_user_opening_six_accounts_at_once(self):
        alice = make_user("alice@example.com")
        Account.open("First", by=alice)
        results = run_in_processes(open_at_once, [(alice.pk,)] * 6)
        self.assertEqual(outcomes(results), ["AccountLimitReached"] * 4 + ["opened"] * 2)
        self.assertEqual(Account.objects.held_by(alice).count(), 3)
