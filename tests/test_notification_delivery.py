"""What the worker's delivery does, called in this process against a real SMTP server: who is
told of which entry, that a claim is sent at most once, and that the sweep finds entries whose
job was never queued. (tests/test_notification_worker.py runs it in the real worker.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.approvals import ApprovalRequest
from accounts.models import Account, LedgerEntry
from jointbank.email_url import email_settings
from notifications.delivery import claim_new_entries, claim_new_events, deliver
from notifications.models import Cursor, Notification, Preference
from notifications.tasks import sweep_notifications
from tests.backdate import backdate
from tests.base import make_user
from tests.smtp import smtp_server


class DeliveryTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = make_user("alice@example.com")
        cls.bob = make_user("bob@example.com")
        cls.account = Account.open("Household", by=cls.alice)
        cls.account.memberships.create(user=cls.bob)

    def setUp(self):
        self.inbox = self.enterContext(smtp_server())
        self.enterContext(self.settings(**email_settings(self.inbox.url)))

    def told(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every message the server received."""
        return [
            (recipients[0], message["Subject"])
            for message, recipients in zip(self.inbox.messages, self.inbox.recipients, strict=True)
        ]

    def test_the_other_holder_is_told_once_however_often_it_runs(self):
        self.account.deposit(Decimal("12.50"), by=self.alice)
        self.assertEqual(deliver(self.account.pk), 1)
        self.assertEqual(deliver(self.account.pk), 0)
        self.assertEqual(
            self.told(),
            [("bob@example.com", 'jointbank: alice deposited $12.50 into "Household"')],
        )
        self.assertEqual(Cursor.objects.get(account=self.account).through_seq, 1)

    def test_interest_is_not_a_holders_move(self):
        deposit = self.account.deposit(Decimal("1200.00"), by=self.alice)
        deliver(self.account.pk)
        # Opened in January with $1200, so that January's interest is more than $0.00.
        opened = datetime(2026, 1, 1, tzinfo=UTC)
        Account.objects.filter(pk=self.account.pk).update(created_at=opened)
        backdate(self.account, {deposit.pk: opened})
        self.account.post_interest("2026-01", Decimal("0.05"), by=self.alice)
        self.assertEqual(self.account.entries.filter(kind=LedgerEntry.Kind.INTEREST).count(), 1)
        self.assertEqual(deliver(self.account.pk), 0)
        self.assertEqual(len(self.inbox.messages), 1)

    def test_a_transfer_between_two_shared_accounts_is_one_email(self):
        holiday = Account.open("Holiday", by=self.alice)
        holiday.memberships.create(user=self.bob)
        self.account.deposit(Decimal("100.00"), by=self.alice)
        deliver(self.account.pk)
        self.account.transfer(holiday, Decimal("40.00"), by=self.alice)
        deliver(self.account.pk)
        deliver(holiday.pk)
        self.assertEqual(
            self.told()[1:],
            [
                (
                    "bob@example.com",
                    'jointbank: alice transferred $40.00 from "Household" to "Holiday"',
                )
            ],
        )

    def test_the_incoming_half_tells_the_holders_of_the_receiving_account_only(self):
        carol = make_user("carol@example.com")
        holiday = Account.open("Holiday", by=self.alice)
        holiday.memberships.create(user=carol)
        self.account.deposit(Decimal("100.00"), by=self.alice)
        self.account.transfer(holiday, Decimal("40.00"), by=self.alice)
        deliver(self.account.pk)
        deliver(holiday.pk)
        self.assertEqual(
            sorted(self.told()),
            [
                ("bob@example.com", 'jointbank: alice deposited $100.00 into "Household"'),
                (
                    "bob@example.com",
                    'jointbank: alice transferred $40.00 from "Household" to "Holiday"',
                ),
                (
                    "carol@example.com",
                    'jointbank: alice transferred $40.00 into "Holiday" from "Household"',
                ),
            ],
        )

    def test_a_holder_is_told_of_moves_made_while_they_held_the_account_only(self):
        self.account.deposit(Decimal("1.00"), by=self.alice)
        carol = make_user("carol@example.com")
        self.account.memberships.create(user=carol, joined_at=timezone.now() + timedelta(seconds=1))
        deliver(self.account.pk)
        self.assertEqual([to for to, _ in self.told()], ["bob@example.com"])

    def test_above_means_more_than_the_amount(self):
        Preference.objects.create(
            account=self.account, user=self.bob, when="above", above=Decimal("10.00")
        )
        self.account.deposit(Decimal("10.00"), by=self.alice)
        self.account.deposit(Decimal("10.01"), by=self.alice)
        deliver(self.account.pk)
        self.assertEqual(
            self.told(), [("bob@example.com", 'jointbank: alice deposited $10.01 into "Household"')]
        )

    def test_a_claim_started_but_not_recorded_as_sent_is_never_sent_again(self):
        doubtful = self.account.deposit(Decimal("1.00"), by=self.alice)
        waiting = self.account.deposit(Decimal("2.00"), by=self.alice)
        claim_new_entries(self.account.pk)
        # As a worker killed during the SMTP exchange leaves it: it may have left.
        Notification.objects.filter(entry=doubtful).update(started_at=timezone.now())
        self.assertEqual(deliver(self.account.pk), 1)
        self.assertEqual(
            self.told(), [("bob@example.com", 'jointbank: alice deposited $2.00 into "Household"')]
        )
        self.assertIsNone(Notification.objects.get(entry=doubtful).sent_at)
        self.assertIsNotNone(Notification.objects.get(entry=waiting).sent_at)

    def test_the_sweep_sends_what_was_never_queued(self):
        # TestCase never commits, so no job was queued for these: as if the process had died
        # between COMMIT and queueing.
        self.account.deposit(Decimal("3.00"), by=self.alice)
        other = Account.open("Other", by=self.bob)
        other.memberships.create(user=self.alice)
        other.deposit(Decimal("4.00"), by=self.bob)
        sweep_notifications(timestamp=0)
        self.assertEqual(
            sorted(self.told()),
            [
                ("alice@example.com", 'jointbank: bob deposited $4.00 into "Other"'),
                ("bob@example.com", 'jointbank: alice deposited $3.00 into "Household"'),
            ],
        )


class RequestAndRulesDeliveryTests(TestCase):
    """Approval requests, their outcomes and rule changes: always e-mailed (the move preference
    does not apply), to the right holders, once."""

    @classmethod
    def setUpTestData(cls):
        cls.alice = make_user("alice@example.com", "Alice")
        cls.bob = make_user("bob@example.com", "Bob")
        cls.carol = make_user("carol@example.com", "Carol")
        cls.account = Account.open("Household", by=cls.alice)
        cls.account.memberships.create(user=cls.bob)
        cls.account.memberships.create(user=cls.carol)
        cls.account.deposit(Decimal("1000.00"), by=cls.alice)
        cls.account.set_rules(Decimal("100.00"), None, by=cls.alice)
        for holder in (cls.bob, cls.carol):
            Preference.objects.create(account=cls.account, user=holder, when="never")

    def setUp(self):
        self.inbox = self.enterContext(smtp_server())
        self.enterContext(self.settings(**email_settings(self.inbox.url)))
        deliver(self.account.pk)  # what setUpTestData did: alice's rules, to bob and carol
        self.forget_the_mail()

    def forget_the_mail(self) -> None:
        self.inbox.messages.clear()
        self.inbox.recipients.clear()

    def message_to(self, address: str):
        [message] = [
            message
            for message, recipients in zip(self.inbox.messages, self.inbox.recipients, strict=True)
            if recipients == [address]
        ]
        return message

    def told(self) -> list[tuple[str, str]]:
        """(recipient, subject), sorted."""
        return sorted(
            (recipients[0], message["Subject"])
            for message, recipients in zip(self.inbox.messages, self.inbox.recipients, strict=True)
        )

    def ask(self, amount: str = "150.00", by=None) -> ApprovalRequest:
        request = self.account.withdraw(Decimal(amount), by=by or self.alice, memo="sofa")
        self.assertIsInstance(request, ApprovalRequest)
        return request

    def test_a_request_reaches_every_other_holder_once_whatever_their_preference(self):
        request = self.ask()
        self.assertEqual(deliver(self.account.pk), 2)
        self.assertEqual(deliver(self.account.pk), 0)
        subject = 'jointbank: Alice asks to withdraw $150.00 from "Household"'
        self.assertEqual(
            self.told(), [("bob@example.com", subject), ("carol@example.com", subject)]
        )
        body = self.message_to("bob@example.com").get_content()
        self.assertIn("another holder's approval is needed", body)
        self.assertIn("Memo: sofa", body)
        self.assertIn(f"Expires: {request.expires_at:%b} {request.expires_at.day},", body)
        self.assertIn(f"http://localhost:8000/accounts/{self.account.pk}/", body)
        self.assertNotIn("alice@example.com", body)
        self.assertEqual(
            self.message_to("bob@example.com")["Message-ID"],
            f"<request-{request.pk}.to-{self.bob.pk}@localhost>",
        )

    def test_approved_the_requester_hears_it_and_the_approver_not_even_of_the_move(self):
        request = self.ask()
        deliver(self.account.pk)
        Preference.objects.filter(user=self.carol).delete()  # carol: moves always
        self.forget_the_mail()
        self.account.approve(request, by=self.bob)
        self.assertEqual(deliver(self.account.pk), 2)
        self.assertEqual(
            self.told(),
            [
                (
                    "alice@example.com",
                    'jointbank: Bob approved your request to withdraw $150.00 from "Household"',
                ),
                ("carol@example.com", 'jointbank: Alice withdrew $150.00 from "Household"'),
            ],
        )
        self.assertIn("Approved by Bob", self.message_to("carol@example.com").get_content())

    def test_rejected_expired_and_cancelled_tell_everyone_but_who_did_it(self):
        rejected, expired, cancelled = self.ask("101.00"), self.ask("102.00"), self.ask("103.00")
        deliver(self.account.pk)
        self.forget_the_mail()
        self.account.reject(rejected, by=self.bob)
        self.account.cancel(cancelled, by=self.alice)
        ApprovalRequest.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
        self.account.void_expired_requests()
        self.assertEqual(deliver(self.account.pk), 7)
        rejected_by_bob = 'Bob rejected {} request to withdraw $101.00 from "Household"'
        expired_ = '{} request to withdraw $102.00 from "Household" expired without an answer'
        cancelled_ = 'Alice cancelled the request to withdraw $103.00 from "Household"'
        self.assertEqual(
            self.told(),
            sorted(
                [
                    ("alice@example.com", "jointbank: " + rejected_by_bob.format("your")),
                    ("carol@example.com", "jointbank: " + rejected_by_bob.format("Alice's")),
                    ("alice@example.com", "jointbank: " + expired_.format("Your")),
                    ("bob@example.com", "jointbank: " + expired_.format("Alice's")),
                    ("carol@example.com", "jointbank: " + expired_.format("Alice's")),
                    ("bob@example.com", "jointbank: " + cancelled_),
                    ("carol@example.com", "jointbank: " + cancelled_),
                ]
            ),
        )

    def test_a_rule_change_reaches_the_other_holders(self):
        self.account.set_rules(Decimal("50.00"), Decimal("300.00"), by=self.bob)
        self.assertEqual(deliver(self.account.pk), 2)
        sentence = (
            'Bob lowered the approval threshold of "Household" from $100.00 to $50.00 and set '
            'the daily limit of "Household" to $300.00 (it was off)'
        )
        self.assertEqual(
            self.told(),
            [
                ("alice@example.com", f"jointbank: {sentence}"),
                ("carol@example.com", f"jointbank: {sentence}"),
            ],
        )
        self.assertEqual(deliver(self.account.pk), 0)

    def test_an_approved_loosening_is_told_once_to_each(self):
        request = self.account.set_rules(Decimal("500.00"), None, by=self.alice)
        deliver(self.account.pk)
        asks = (
            'jointbank: Alice asks to change the rules of "Household" (approval threshold $500.00)'
        )
        self.assertEqual(self.told(), [("bob@example.com", asks), ("carol@example.com", asks)])
        self.forget_the_mail()
        self.account.approve(request, by=self.bob)
        deliver(self.account.pk)
        self.assertEqual(
            self.told(),
            [
                (
                    "alice@example.com",
                    'jointbank: Bob approved your request to change the rules of "Household" '
                    "(approval threshold $500.00)",
                ),
                (
                    "carol@example.com",
                    'jointbank: Alice raised the approval threshold of "Household" from $100.00 '
                    "to $500.00",
                ),
            ],
        )
        self.assertIn("Approved by Bob", self.message_to("carol@example.com").get_content())

    def test_a_sole_holders_rules_tell_nobody(self):
        solo = Account.open("Solo", by=self.alice)
        solo.set_rules(Decimal("10.00"), None, by=self.alice)
        self.assertEqual(deliver(solo.pk), 0)
        self.assertEqual(solo.rule_changes.count(), 1)

    def test_a_claim_started_but_not_sent_is_never_sent_again(self):
        doubtful, waiting = self.ask("101.00"), self.ask("102.00")
        claim_new_events(self.account.pk)
        # As a worker killed during the SMTP exchange leaves it: it may have left.
        Notification.objects.filter(request_asked=doubtful).update(started_at=timezone.now())
        self.assertEqual(deliver(self.account.pk), 2)
        self.assertEqual(
            [subject for _, subject in self.told()],
            ['jointbank: Alice asks to withdraw $102.00 from "Household"'] * 2,
        )
        self.assertFalse(Notification.objects.filter(request_asked=waiting, sent_at=None).exists())

    def test_the_sweep_sends_what_was_never_queued(self):
        # TestCase never commits: no job was queued, as if the process died after COMMIT.
        self.ask()
        sweep_notifications(timestamp=0)
        self.assertEqual(len(self.inbox.messages), 2)
        self.assertEqual(
            Cursor.objects.get(account=self.account).through_version,
            Account.objects.get(pk=self.account.pk).version,
        )

    def test_a_request_answered_before_the_worker_came_asks_nothing(self):
        request = self.ask()
        self.account.reject(request, by=self.bob)
        # One claim, both stamped: the outcome tells them, a question would come too late.
        self.assertEqual(deliver(self.account.pk), 2)
        rejected = 'Bob rejected {} request to withdraw $150.00 from "Household"'
        self.assertEqual(
            self.told(),
            [
                ("alice@example.com", "jointbank: " + rejected.format("your")),
                ("carol@example.com", "jointbank: " + rejected.format("Alice's")),
            ],
        )
        self.assertFalse(Notification.objects.filter(request_asked=request).exists())

    def test_a_name_keeps_its_capitals_at_the_start_of_a_sentence(self):
        anne = make_user("anne@example.com", "Anne-Marie O'Neil")
        self.account.memberships.create(user=anne)
        request = self.ask(by=anne)
        deliver(self.account.pk)
        self.forget_the_mail()
        ApprovalRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now())
        self.account.void_expired_requests()
        deliver(self.account.pk)
        self.assertIn(
            (
                "bob@example.com",
                "jointbank: Anne-Marie O'Neil's request to withdraw $150.00 from \"Household\" "
                "expired without an answer",
            ),
            self.told(),
        )

    def test_a_burst_is_claimed_in_as_many_queries_as_one(self):
        """Who held the account, and their preferences, are read once per claim, however
        many entries, requests and rule changes it claims."""

        thresholds = iter(range(99, 0, -1))  # each lower: a change made at once

        def queries_to_claim(burst: int) -> int:
            for _ in range(burst):
                self.account.deposit(Decimal("200.00"), by=self.alice)
                self.ask()
                self.account.set_rules(Decimal(next(thresholds)), None, by=self.alice)
            with CaptureQueriesContext(connection) as queries:
                self.assertEqual(claim_new_entries(self.account.pk), burst)
                # The request and the rule change, each to bob and carol.
                self.assertEqual(claim_new_events(self.account.pk), 4 * burst)
            return len(queries)

        self.assertEqual(queries_to_claim(1), queries_to_claim(12))
