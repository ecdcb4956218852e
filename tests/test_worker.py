"""The background worker (`python manage.py worker`, procrastinate) as real OS processes on the
test database: each periodic job once however many workers run, a job queued in a transaction
that rolls back never runs, and SIGTERM or Ctrl-C lets the job in hand finish."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import psycopg
from django.core.management import call_command
from django.db import connection, transaction
from django.test import TransactionTestCase
from procrastinate.contrib.django.models import (
    ProcrastinateEvent,
    ProcrastinateJob,
    ProcrastinateWorker,
)

from accounts.approvals import ApprovalRequest
from accounts.models import Account, InterestPosting, LedgerEntry
from accounts.tasks import expire_approval_requests, post_monthly_interest
from notifications.tasks import notify_holders
from tests.backdate import backdate
from tests.base import empty_the_queue, make_user
from tests.servers import WorkerProcess, shared_database_url


def first_of_month(year: int, month: int) -> int:
    """The timestamp the monthly interest job is scheduled at: 00:00 UTC on the 1st."""
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


class WorkerTestCase(TransactionTestCase):
    def setUp(self):
        empty_the_queue()
        self.addCleanup(empty_the_queue)
        self.alice = make_user("alice@example.com")
        self.workers: list[WorkerProcess] = []

    def tearDown(self):
        for worker in self.workers:
            worker.kill()

    def start_worker(self, **options) -> WorkerProcess:
        worker = WorkerProcess(**options)
        self.workers.append(worker)
        return worker

    def open_account(self, name: str, amount: str, opened: datetime) -> Account:
        """An account opened at `opened` with `amount` deposited then, so that it has earned
        interest for the months after that under any formula."""
        account = Account.open(name, by=self.alice)
        account.deposit(Decimal(amount), by=self.alice)
        Account.objects.filter(pk=account.pk).update(created_at=opened)
        backdate(account, {entry.pk: opened for entry in account.entries.all()})
        # The deposit queued a notification job (alice alone: nobody to tell). These tests are
        # about the interest job and which job is in hand: leave only theirs in the queue.
        ProcrastinateJob.objects.filter(task_name=notify_holders.name).delete()
        return account

    def wait_until(self, condition, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n\n".join(worker.log for worker in self.workers)
                self.fail(f"timed out waiting for {what}; the workers' logs:\n{logs}")
            time.sleep(0.1)

    @staticmethod
    def database_now() -> datetime:
        with connection.cursor() as cursor:
            cursor.execute("SELECT now()")
            return cursor.fetchone()[0]

    def interest_jobs(self):
        return ProcrastinateJob.objects.filter(task_name=post_monthly_interest.name)


class TwoWorkersTests(WorkerTestCase):
    def test_two_workers_started_at_once_post_the_months_interest_once(self):
        opened = datetime(2026, 1, 10, tzinfo=UTC)
        accounts = [
            self.open_account("Household", "1000.00", opened),
            self.open_account("Holiday", "250.00", opened),
            self.open_account("Car", "40.00", opened),
        ]
        # Both clocks start 20 s before midnight on 31 January: the monthly job falls due while
        # both workers run, and both try to queue it at the same tick.
        clock = "2026-01-31 23:59:40"
        workers = [self.start_worker(clock=clock), self.start_worker(clock=clock)]
        self.wait_until(lambda: ProcrastinateWorker.objects.count() == 2, "both workers")
        both_up = self.database_now()
        due = first_of_month(2026, 2)
        self.wait_until(
            lambda: self.interest_jobs().filter(args__timestamp=due, status="succeeded").exists(),
            "the monthly interest job",
        )
        queued = ProcrastinateEvent.objects.get(
            job__in=self.interest_jobs().filter(args__timestamp=due), type="deferred"
        )
        self.assertGreater(
            queued.at, both_up, "precondition: both workers were up when the job fell due"
        )
        # Both deferrers woke at the same tick; give the slower one time to try, then stop both.
        time.sleep(3)
        for worker in workers:
            self.assertEqual(worker.stop(), 0, worker.log)

        self.assertEqual(self.interest_jobs().filter(args__timestamp=due).count(), 1)
        # Every periodic job (this month's interest, the catch-up of the previous scheduled
        # one, the daily pruning) was queued once for each time it was due.
        scheduled = Counter(
            (job.task_name, job.args["timestamp"])
            # Periodic jobs carry their due time (the interest entries queue notification jobs).
            for job in ProcrastinateJob.objects.filter(args__has_key="timestamp")
        )
        self.assertEqual(set(scheduled.values()), {1}, scheduled)
        for account in accounts:
            with self.subTest(account=account.name):
                posting = InterestPosting.objects.get(account=account, period="2026-01")
                entry = account.entries.get(kind=LedgerEntry.Kind.INTEREST)
                self.assertEqual(posting.entry, entry)
                self.assertGreater(entry.amount, 0)
        call_command("verify_ledger", stdout=StringIO())


class RolledBackJobTests(WorkerTestCase):
    def test_a_job_queued_in_a_transaction_that_rolls_back_never_runs(self):
        account = self.open_account("Household", "1000.00", datetime(2023, 12, 15, tzinfo=UTC))

        class RolledBack(Exception):
            pass

        with self.assertRaises(RolledBack), transaction.atomic():
            post_monthly_interest.defer(timestamp=first_of_month(2024, 2))  # January
            raise RolledBack
        post_monthly_interest.defer(timestamp=first_of_month(2024, 3))  # February

        self.start_worker()
        # Jobs run in the order they were queued: by the time February's is done, January's
        # would have run before it, had it been queued at all.
        self.wait_until(
            lambda: (
                self.interest_jobs()
                .filter(args__timestamp=first_of_month(2024, 3), status="succeeded")
                .exists()
            ),
            "February's interest job",
        )

        self.assertTrue(InterestPosting.objects.filter(account=account, period="2024-02").exists())
        self.assertFalse(InterestPosting.objects.filter(account=account, period="2024-01").exists())
        self.assertFalse(self.interest_jobs().filter(args__timestamp=first_of_month(2024, 2)))


class StopTests(WorkerTestCase):
    def test_sigterm_stops_it_after_the_job_in_hand(self):
        self.assert_it_stops_after_the_job_in_hand(signal.SIGTERM)

    def test_ctrl_c_stops_it_after_the_job_in_hand(self):
        self.assert_it_stops_after_the_job_in_hand(signal.SIGINT)

    def test_a_second_signal_does_not_cut_the_job_short(self):
        # What Ctrl-C under `make run` does: the terminal's SIGINT, then the shell's SIGTERM.
        self.assert_it_stops_after_the_job_in_hand(signal.SIGINT, signal.SIGTERM)

    def assert_it_stops_after_the_job_in_hand(self, *signals: signal.Signals) -> None:
        account = self.open_account("Household", "1000.00", datetime(2023, 12, 15, tzinfo=UTC))
        # A transaction of another process holds the account's row lock, so an interest job
        # waits for it once it has started: a job surely in hand.
        with psycopg.connect(shared_database_url()) as holder:
            holder.execute("SELECT 1 FROM accounts_account WHERE id = %s FOR UPDATE", [account.pk])
            worker = self.start_worker(
                JOINTBANK_LOCK_TIMEOUT="120s", JOINTBANK_STATEMENT_TIMEOUT="120s"
            )
            post_monthly_interest.defer(timestamp=first_of_month(2024, 1))
            self.wait_until(lambda: self.blocked_by(holder), "a job to block")
            in_hand = ProcrastinateJob.objects.get(status="doing")

            for signum in signals:
                worker.process.send_signal(signum)
                worker.wait_for_log("Stop requested")
            time.sleep(1)  # for the last signal to be handled, if it were to end the process
            self.assertIsNone(worker.process.poll(), "it must wait for the job in hand")
        # The lock is released: the job ends, then the worker, on its own.
        self.assertEqual(worker.process.wait(timeout=60), 0, worker.log)
        worker.stop()
        in_hand.refresh_from_db()
        self.assertEqual(in_hand.status, "succeeded")
        self.assertTrue(InterestPosting.objects.filter(account=account).exists())
        # It took no other job once asked to stop, and signed off.
        self.assertFalse(ProcrastinateJob.objects.filter(status="doing").exists())
        self.assertFalse(ProcrastinateWorker.objects.exists())
        self.assertIn("Stopped worker", worker.log)

    def test_the_job_of_a_worker_killed_mid_job_runs_again_on_another(self):
        account = self.open_account("Household", "1000.00", datetime(2023, 12, 15, tzinfo=UTC))
        with psycopg.connect(shared_database_url()) as holder:
            holder.execute("SELECT 1 FROM accounts_account WHERE id = %s FOR UPDATE", [account.pk])
            killed = self.start_worker(
                JOINTBANK_LOCK_TIMEOUT="120s", JOINTBANK_STATEMENT_TIMEOUT="120s"
            )
            job_id = post_monthly_interest.defer(timestamp=first_of_month(2024, 1))
            self.wait_until(lambda: self.blocked_by(holder), "the job to block")
            killed.kill()  # SIGKILL: no goodbye, the job stays "doing" with its worker
        self.assertEqual(ProcrastinateJob.objects.get(pk=job_id).status, "doing")

        # Once the dead worker's heartbeat is 30 s old, the next worker's every-minute upkeep
        # puts the job back in the queue, and it runs.
        self.start_worker()
        self.wait_until(
            lambda: ProcrastinateJob.objects.get(pk=job_id).status == "succeeded",
            "the job to run again",
            timeout=180,
        )
        self.assertEqual(ProcrastinateJob.objects.get(pk=job_id).attempts, 2)
        # The killed attempt's transaction rolled back; the second one credited December.
        posting = InterestPosting.objects.get(account=account, period="2023-12")
        self.assertEqual(posting.entry.kind, LedgerEntry.Kind.INTEREST)

    @staticmethod
    def blocked_by(holder) -> bool:
        """Whether another session waits for a lock that `holder`'s session holds."""
        with connection.cursor() as cursor:  # autocommit: a fresh look at the server each time
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity"
                " WHERE %s = ANY(pg_blocking_pids(pid)))",
                [holder.info.backend_pid],
            )
            return cursor.fetchone()[0]


class ExpiryJobTests(WorkerTestCase):
    def test_a_running_worker_voids_expired_requests_every_minute(self):
        bob = make_user("bob@example.com")
        account = Account.open("Household", by=self.alice)
        account.add_holder(bob)
        account.deposit(Decimal("1000.00"), by=self.alice)
        account.set_rules(Decimal("100.00"), None, by=self.alice)
        request = account.withdraw(Decimal("150.00"), by=self.alice)
        fresh = account.withdraw(Decimal("120.00"), by=bob)
        # Expired in the worker's time: its clock starts 20 s before a minute's tick.
        ApprovalRequest.objects.filter(pk=request.pk).update(
            expires_at=datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
        )
        worker = self.start_worker(clock="2026-01-31 23:59:40")
        jobs = ProcrastinateJob.objects.filter(task_name=expire_approval_requests.name)
        self.wait_until(lambda: jobs.filter(status="succeeded").exists(), "the expiry job")
        self.assertEqual(worker.stop(), 0, worker.log)

        request.refresh_from_db()
        fresh.refresh_from_db()
        self.assertEqual((request.state, fresh.state), ("expired", "pending"))
        account.refresh_from_db()
        self.assertEqual(account.held, Decimal("120.00"))
        call_command("verify_ledger", stdout=StringIO())
