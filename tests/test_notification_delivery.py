"""What the worker's delivery does, called in this process against a real SMTP server: who is
told of which entry, that a claim is sent at most once, and that the sweep finds entries whose
job was never queued. (tests/test_notification_worker.py runs it in the real worker.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.test import TestCase
from django.utils import timezone

from accounts.models import Account, LedgerEntry
from jointbank.email_url import email_settings
from notifications.delivery import claim_new_entries, deliver
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
