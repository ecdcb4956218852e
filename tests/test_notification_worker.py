"""Notification e-mails as they really go out: `python manage.py worker` as an OS process on the
test database, sending through a real SMTP server (aiosmtpd) that DJANGO_EMAIL_URL names.
Deliveries are counted per ledger entry at the server, by the Message-ID each carries."""

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
from tests.smtp import smtp_server

MESSAGE_ID = re.compile(r"<entry-(\d+)\.to-(\d+)@")


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
        """(entry id, recipient address) -> how many times the server received it."""
        counts = Counter()
        for message, recipients in zip(inbox.messages, inbox.recipients, strict=True):
            entry_id = int(MESSAGE_ID.match(message["Message-ID"]).group(1))
            for recipient in recipients:
                counts[entry_id, recipient] += 1
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

        expected = {(entry.pk, "bob@example.com"): 1 for entry in moves}
        expected[bobs.pk, "alice@example.com"] = 1
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
        self.assertEqual(self.deliveries(inbox), {(large.pk, "carol@example.com"): 1})
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
        self.assertEqual(self.deliveries(inbox), {(kept.pk, "bob@example.com"): 1})
        self.assertNotIn("666", inbox.messages[0].get_content())
        self.assertEqual(list(self.account.entries.values_list("amount", flat=True)), [7])


class KilledWorkerTests(NotificationWorkerTestCase):
    BURST = 50

    def test_a_worker_killed_mid_burst_and_started_again_delivers_each_exactly_once(self):
        made: list[LedgerEntry] = []

        def burst():
            try:
                for _ in range(self.BURST):
                    made.append(self.account.deposit(Decimal("1.00"), by=self.alice))
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

        counts = self.deliveries(inbox)
        self.assertEqual(len(made), self.BURST)
        # Started but not recorded as sent: the worker died during that SMTP exchange, and the
        # e-mail may or may not have left. It is never sent again (at most once).
        in_doubt = set(Notification.objects.filter(sent_at=None).values_list("entry_id", flat=True))
        self.assertLessEqual(len(in_doubt), 1, "one worker sends one e-mail at a time")
        for entry in made:
            with self.subTest(entry=entry.seq):
                sent = counts[entry.pk, "bob@example.com"]
                self.assertIn(sent, {0, 1} if entry.pk in in_doubt else {1})
        self.assertEqual(sum(counts.values()), len(counts), "each (entry, recipient) once")
        self.assertEqual({address for _, address in counts}, {"bob@example.com"})
        print(f"{len(inbox.messages)} e-mails for {self.BURST} moves; in doubt: {len(in_doubt)}")

    def wait_until_job_of_killed_worker_ran_again(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while ProcrastinateJob.objects.filter(
            task_name__startswith="notifications.", status="doing", attempts__gte=0
        ).exists():
            if time.monotonic() > deadline:
                self.fail("the killed worker's job was not run again")
            time.sleep(0.5)
