"""Notification e-mails as they really go out: `python manage.py worker` as an OS process on the
test database, sending through a real SMTP server (aiosmtpd) that DJANGO_EMAIL_URL names.
Deliveries are counted per thing told (a ledger entry, an approval request made or answered,
a rule change) at the server, by the Message-ID each carries."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from decimal import Decimal

from django.db import connection, transaction
from django.test import TransactionTestCase
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import Account, LedgerEntry
from notifications.models import Notification, Preference
from tests.base import empty_the_queue, make_user
from tests.servers import WorkerProcess
from tests.smtp import Inbox, smtp_server

MESSAGE_ID = re.compile(r"<((?:entry|request|outcome|rule-change)-\d+)\.to-(\d+)@")


class NotificationWorkerTestCase(TransactionTestCase):
    def setUp(self):
        empty_the_queue()
        self.addCleanup(empty_the_queue)
        self.alice = make_user("alice@example.com", name="Alice Martin")
        self.bob = make_user("bob@example.com", name="Bob")
        self.account = Account.open("Household", by=self.alice)
        self.account.memberships.create(user=self.bob)
        self.workers: list[WorkerProcess] = []

    def tearDown(self):
        for worker in self.workers:
            worker.kill()

    def start_worker(self, inbox) -> WorkerProcess:
        worker = WorkerProcess(DJANGO_EMAIL_URL=inbox.url)
        self.workers.append(worker)
        worker.wait_for_log("Starting worker")
        return worker

    def wait_for_mail(self, inbox, count: int, timeout: float = 60) -> list:
        try:
            return inbox.wait_for(count, timeout=timeout)
        except AssertionError as error:
            logs = "\n\n".join(worker.log for worker in self.workers)
            self.fail(f"{error}; the workers' logs:\n{logs}")

    def deliveries(self, inbox) -> Counter:
        """(thing, recipient address) -> how many times the server received it; the thing as
        its Message-ID names it: "entry-5", "request-3", "outcome-3", "rule-change-2"."""
        counts = Counter()
        for message, recipients in zip(inbox.messages, inbox.recipients, strict=True):
            thing = MESSAGE_ID.match(message["Message-ID"]).group(1)
            for recipient in recipients:
                counts[thing, recipient] += 1
        return counts

    def wait_until_idle(self, timeout: float = 120) -> None:
        """Until no notification job is waiting or running and every claim was started: what
        was going to be sent has been."""
        deadline = time.monotonic() + timeout
        while (
            ProcrastinateJob.objects.filter(
                task_name__startswith="notifications.", status__in=["todo", "doing"]
            ).exists()
            or Notification.objects.filter(started_at=None).exists()
        ):
            if time.monotonic() > deadline:
                logs = "\n\n".join(worker.log for worker in self.workers)
                self.fail(f"the worker did not finish; its logs:\n{logs}")
            time.sleep(0.1)


class DeliveryTests(NotificationWorkerTestCase):
    def test_each_of_alices_moves_reaches_bob_once_and_alice_not_at_all(self):
        holiday = Account.open("Holiday", by=self.alice)
        with smtp_server() as inbox:
            self.start_worker(inbox)
            committed = time.monotonic()
            moves = [
                self.account.deposit(Decimal("100.00"), by=self.alice),
                self.account.withdraw(Decimal("30.00"), by=self.alice, memo="rent"),
                self.account.transfer(holiday, Decimal("20.00"), by=self.alice),
            ]
            messages = self.wait_for_mail(inbox, 3, timeout=60)
            print(f"3 e-mails arrived {time.monotonic() - committed:.2f} s after the first commit")
            bobs = self.account.deposit(Decimal("5.00"), by=self.bob)
            self.wait_for_mail(inbox, 4, timeout=60)
            self.wait_until_idle()

        expected = {(f"entry-{entry.pk}", "bob@example.com"): 1 for entry in moves}
        expected[f"entry-{bobs.pk}", "alice@example.com"] = 1
        self.assertEqual(self.deliveries(inbox), expected)
        # Holiday's incoming half has no other holder to tell.
        withdrawal = messages[
            [m["Message-ID"] for m in messages].index(
                f"<entry-{moves[1].pk}.to-{self.bob.pk}@localhost>"
            )
        ]
        self.assertEqual(
            withdrawal["Subject"], 'jointbank: Alice Martin withdrew $30.00 from "Household"'
        )
        body = withdrawal.get_content()
        self.assertIn("Hello Bob,", body)
        self.assertIn("Memo: rent", body)
        self.assertIn('Balance of "Household" after it: $70.00', body)
        self.assertIn(f"http://localhost:8000/accounts/{self.account.pk}/", body)
        self.assertEqual(Notification.objects.filter(sent_at=None).count(), 0)

    def test_never_and_above_an_amount_are_respected(self):
        carol = make_user("carol@example.com")
        self.account.memberships.create(user=carol)
        Preference.objects.create(account=self.account, user=self.bob, when="never")
        Preference.objects.create(
            account=self.account, user=carol, when="above", above=Decimal("50.00")
        )
        with smtp_server() as inbox:
            self.start_worker(inbox)
            small = self.account.deposit(Decimal("50.00"), by=self.alice)
            large = self.account.deposit(Decimal("50.01"), by=self.alice)
            self.wait_for_mail(inbox, 1, timeout=60)
            self.wait_until_idle()
        self.assertEqual(self.deliveries(inbox), {(f"entry-{large.pk}", "carol@example.com"): 1})
        self.assertFalse(Notification.objects.filter(entry=small).exists())

    def test_an_entry_that_rolled_back_sends_nothing(self):
        class RolledBack(Exception):
            pass

        with smtp_server() as inbox:
            self.start_worker(inbox)
            with self.assertRaises(RolledBack), transaction.atomic():
                self.account.deposit(Decimal("666.00"), by=self.alice)
                raise RolledBack
            kept = self.account.deposit(Decimal("7.00"), by=self.alice)
            self.wait_for_mail(inbox, 1, timeout=60)
            self.wait_until_idle()
        self.assertEqual(self.deliveries(inbox), {(f"entry-{kept.pk}", "bob@example.com"): 1})
        self.assertNotIn("666", inbox.messages[0].get_content())
        self.assertEqual(list(self.account.entries.values_list("amount", flat=True)), [7])


class RequestsAndRulesTests(NotificationWorkerTestCase):
    def test_requests_their_outcomes_and_rule_changes_reach_the_right_holder_once(self):
        # Bob wants no e-mail about moves: requests and rule changes reach him all the same.
        Preference.objects.create(account=self.account, user=self.bob, when="never")
        with smtp_server() as inbox:
            self.start_worker(inbox)
            self.account.deposit(Decimal("1000.00"), by=self.alice)
            self.account.set_rules(Decimal("100.00"), None, by=self.alice)
            change = self.account.rule_changes.get()
            asked = self.account.withdraw(Decimal("600.00"), by=self.alice, memo="sofa")
            self.wait_for_mail(inbox, 2, timeout=60)
            approved = self.account.approve(asked, by=self.bob)
            loosening = self.account.set_rules(None, None, by=self.alice)
            # Asked of bob before he answers (a request answered before the worker reads it
            # is told by its outcome only: tests/test_notification_delivery.py).
            self.wait_for_mail(inbox, 4, timeout=60)
            self.account.reject(loosening, by=self.bob)
            self.wait_for_mail(inbox, 5, timeout=60)
            self.wait_until_idle()

        alice, bob = "alice@example.com", "bob@example.com"
        self.assertEqual(
            self.deliveries(inbox),
            {
                (f"rule-change-{change.pk}", bob): 1,
                (f"request-{asked.pk}", bob): 1,
                (f"outcome-{asked.pk}", alice): 1,
                (f"request-{loosening.pk}", bob): 1,
                (f"outcome-{loosening.pk}", alice): 1,
            },
        )
        # The approved withdrawal is a move: alice made it, bob approved it, nobody is told.
        self.assertFalse(Notification.objects.filter(entry=approved.entry).exists())
        subjects = {message["Message-ID"]: message for message in inbox.messages}
        request = subjects[f"<request-{asked.pk}.to-{self.bob.pk}@localhost>"]
        self.assertEqual(
            request["Subject"], 'jointbank: Alice Martin asks to withdraw $600.00 from "Household"'
        )
        body = request.get_content()
        self.assertIn("Hello Bob,", body)
        self.assertIn("Memo: sofa", body)
        self.assertIn(f"http://localhost:8000/accounts/{self.account.pk}/", body)
        outcome = subjects[f"<outcome-{asked.pk}.to-{self.alice.pk}@localhost>"]
        self.assertEqual(
            outcome["Subject"],
            'jointbank: Bob approved your request to withdraw $600.00 from "Household"',
        )
        rules = subjects[f"<rule-change-{change.pk}.to-{self.bob.pk}@localhost>"]
        self.assertEqual(
            rules["Subject"],
            'jointbank: Alice Martin set the approval threshold of "Household" to $100.00 '
            "(it was off)",
        )

    def test_a_request_or_rule_change_that_rolled_back_sends_nothing(self):
        class RolledBack(Exception):
            pass

        self.account.deposit(Decimal("1000.00"), by=self.alice)
        Preference.objects.create(account=self.account, user=self.bob, when="never")
        with smtp_server() as inbox:
            self.start_worker(inbox)
            with self.assertRaises(RolledBack), transaction.atomic():
                self.account.set_rules(Decimal("100.00"), None, by=self.alice)
                self.account.withdraw(Decimal("666.00"), by=self.alice)
                raise RolledBack
            self.account.set_rules(None, Decimal("50.00"), by=self.alice)
            self.wait_for_mail(inbox, 1, timeout=60)
            self.wait_until_idle()
        change = self.account.rule_changes.get()
        self.assertEqual(
            self.deliveries(inbox), {(f"rule-change-{change.pk}", "bob@example.com"): 1}
        )
        self.assertFalse(self.account.approval_requests.exists())
        self.assertNotIn("100.00", inbox.messages[0].get_content())


class KilledWorkerTests(NotificationWorkerTestCase):
    BURST = 50

    def kill_mid_burst(self, make_one) -> Inbox:
        """Call `make_one(n)` BURST times in another thread, each committing something to
        tell bob; SIGKILL the worker after 10 e-mails, in the middle of the burst; start a
        new one and wait until everything has been sent (or left in doubt). The inbox."""

        def burst():
            try:
                for n in range(self.BURST):
                    make_one(n)
                    time.sleep(0.05)  # a burst that lasts longer than a few e-mails take
            finally:
                connection.close()

        with smtp_server() as inbox:
            killed = self.start_worker(inbox)
            mover = threading.Thread(target=burst)
            mover.start()
            self.wait_for_mail(inbox, 10, timeout=120)
            killed.kill()  # SIGKILL: no clean-up, its job stays "doing", its claims as they are
            self.assertTrue(mover.is_alive(), "precondition: killed in the middle of the burst")
            mover.join()
            self.start_worker(inbox)
            self.wait_until_idle(timeout=180)
            # A stalled job is requeued once its worker's heartbeat is 30 s old: wait for it.
            self.wait_until_job_of_killed_worker_ran_again(timeout=180)
            self.wait_until_idle()
        return inbox

    def assert_each_told_bob_once(self, inbox, things: list[str]) -> None:
        """Each thing ("entry-5", …) reached bob exactly once, and nothing reached anyone
        twice; a claim the kill left in doubt, once or not at all."""
        counts = self.deliveries(inbox)
        # Started but not recorded as sent: the worker died during that SMTP exchange, and the
        # e-mail may or may not have left. It is never sent again (at most once).
        in_doubt = {
            f"{tag}-{about}"
            for claim in Notification.objects.filter(sent_at=None).values()
            for tag, about in [
                ("entry", claim["entry_id"]),
                ("request", claim["request_asked_id"]),
                ("outcome", claim["request_decided_id"]),
                ("rule-change", claim["rule_change_id"]),
            ]
            if about is not None
        }
        self.assertLessEqual(len(in_doubt), 1, "one worker sends one e-mail at a time")
        for thing in things:
            with self.subTest(thing=thing):
                sent = counts[thing, "bob@example.com"]
                self.assertIn(sent, {0, 1} if thing in in_doubt else {1})
        self.assertEqual(sum(counts.values()), len(counts), "each (thing, recipient) once")
        self.assertEqual({address for _, address in counts}, {"bob@example.com"})
        print(f"{len(inbox.messages)} e-mails for {len(things)} things; in doubt: {in_doubt}")

    def test_a_worker_killed_mid_burst_and_started_again_delivers_each_exactly_once(self):
        made: list[LedgerEntry] = []
        inbox = self.kill_mid_burst(
            lambda n: made.append(self.account.deposit(Decimal("1.00"), by=self.alice))
        )
        self.assertEqual(len(made), self.BURST)
        self.assert_each_told_bob_once(inbox, [f"entry-{entry.pk}" for entry in made])

    def test_requests_and_rule_changes_too(self):
        Preference.objects.create(account=self.account, user=self.bob, when="never")
        self.account.deposit(Decimal("1000.00"), by=self.alice)  # not e-mailed: bob said never
        self.account.set_rules(Decimal("1.00"), None, by=self.alice)

        def request_or_rule_change(n: int) -> None:
            if n % 2:  # a withdrawal above the threshold: a request
                self.account.withdraw(Decimal("2.00"), by=self.alice)
            else:  # a lower daily limit: applies at once
                self.account.set_rules(Decimal("1.00"), Decimal(500 - n), by=self.alice)

        inbox = self.kill_mid_burst(request_or_rule_change)
        requests = [
            f"request-{pk}" for pk in self.account.approval_requests.values_list("pk", flat=True)
        ]
        changes = [
            f"rule-change-{pk}" for pk in self.account.rule_changes.values_list("pk", flat=True)
        ]
        self.assertEqual((len(requests), len(changes)), (self.BURST // 2, self.BURST // 2 + 1))
        self.assert_each_told_bob_once(inbox, requests + changes)

    def wait_until_job_of_killed_worker_ran_again(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while ProcrastinateJob.objects.filter(
            task_name__startswith="notifications.", status="doing", attempts__gte=0
        ).exists():
            if time.monotonic() > deadline:
                self.fail("the killed worker's job was not run again")
            time.sleep(0.5)
