"""`post_interest`: a month's interest from the daily closing balances (Actual/365), through the
locked path, at most once per account and month. Histories are written through the model now
and dated back with tests/backdate.py."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from urllib.parse import quote

from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.interest import BadPeriod, Month
from accounts.management.commands.post_interest import Command as PostInterestCommand
from accounts.models import Account, InterestPosting, LedgerEntry
from tests.backdate import backdate
from tests.base import make_user

ROOT = Path(__file__).resolve().parent.parent


def at(moment: str) -> datetime:
    """A moment written in ISO format, in UTC unless it says otherwise."""
    when = datetime.fromisoformat(moment)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def account_with_history(by, opened: str, *changes: tuple[str, str], name="Savings") -> Account:
    """An account opened at `opened` whose deposits (positive) and withdrawals (negative) are
    dated at their moments, as if they had happened then."""
    account = Account.open(name, by=by)
    dates = {}
    for when, amount in changes:
        amount = Decimal(amount)
        change = account.deposit if amount > 0 else account.withdraw
        entry = change(abs(amount), by=by)
        dates[entry.pk] = at(when)
    backdate(account, dates)
    Account.objects.filter(pk=account.pk).update(created_at=at(opened))
    account.refresh_from_db()
    return account


def post_interest(period=None) -> str:
    out = StringIO()
    call_command("post_interest", *(["--period", period] if period else []), stdout=out)
    return out.getvalue()


def interest_amounts(account) -> list[Decimal]:
    entries = account.entries.filter(kind=LedgerEntry.Kind.INTEREST).order_by("seq")
    return list(entries.values_list("amount", flat=True))


def balance(account) -> Decimal:
    account.refresh_from_db()
    return account.balance


@override_settings(JOINTBANK_INTEREST_RATE=Decimal("0.02"))
class DailyBalanceInterestTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = make_user("alice@example.com")

    def test_a_deposit_after_the_month_ended_earns_nothing_for_it(self):
        # The gaming the formula exists to stop: a million arrives right after the month ended,
        # just before the job runs. Opened on the 5th of a 30-day month with $1,000.00: days 5
        # to 30 count, 26 × 1,000.00 × 0.02 ÷ 365 = 1.4246… The old "balance at posting time
        # ÷ 12" credited 1,001,000.00 × 0.02 ÷ 12 = $1,668.33.
        account = account_with_history(
            self.alice,
            "2026-09-05T09:00",
            ("2026-09-05T09:00:01", "1000.00"),
            ("2026-10-01T00:00:30", "1000000.00"),
        )

        out = post_interest("2026-09")

        self.assertEqual(interest_amounts(account), [Decimal("1.42")])
        self.assertEqual(balance(account), Decimal("1001001.42"))
        self.assertEqual(
            InterestPosting.objects.get(account=account, period="2026-09").entry,
            account.entries.get(kind=LedgerEntry.Kind.INTEREST),
        )
        self.assertIn("Interest 2026-09 at 2% a year: posted to 1 accounts", out)
        call_command("verify_ledger", stdout=StringIO())  # the entry extends the hash chain

    def test_each_day_earns_its_closing_balance_and_rounding_happens_once(self):
        # Sep 1-9: 1,000.00; Sep 10 ends at 3,000.00 (a withdrawal, then a deposit: the last
        # entry of the day counts); Sep 20-30: 500.00.
        # (9 × 1,000 + 10 × 3,000 + 11 × 500) × 0.02 ÷ 365 = 44,500 × 0.02 ÷ 365 = 2.438… → 2.44.
        # Rounded per day it would be 9 × 0.05 + 10 × 0.16 + 11 × 0.03 = 2.38.
        account = account_with_history(
            self.alice,
            "2026-08-20T10:00",
            ("2026-08-20T10:00:01", "1000.00"),
            ("2026-09-10T09:00", "-100.00"),
            ("2026-09-10T15:00", "2100.00"),
            ("2026-09-20T08:00", "-2500.00"),
        )

        post_interest("2026-09")

        self.assertEqual(interest_amounts(account), [Decimal("2.44")])

    def test_a_day_ends_at_midnight(self):
        last_moment = account_with_history(
            self.alice, "2026-09-01T00:00", ("2026-09-30T23:59:59.999999", "1000000.00")
        )
        next_day = account_with_history(
            self.alice, "2026-09-01T00:00", ("2026-10-01T00:00:00", "1000000.00")
        )

        post_interest("2026-09")

        # One day: 1,000,000.00 × 0.02 ÷ 365 = 54.79.
        self.assertEqual(interest_amounts(last_moment), [Decimal("54.79")])
        self.assertEqual(interest_amounts(next_day), [])

    @override_settings(TIME_ZONE="America/New_York")
    def test_a_day_ends_at_midnight_in_the_time_zone(self):
        # 02:00 UTC on Oct 1 is 22:00 on Sep 30 in New York (EDT, UTC-4): still September there.
        account = account_with_history(
            self.alice, "2026-09-01T00:00", ("2026-10-01T02:00", "1000000.00")
        )
        # 03:59 UTC on Sep 1 is still August in New York: opened before September's first day
        # ended, so a deposit at 04:00 UTC (midnight EDT) counts from September 1st on.
        whole_month = account_with_history(
            self.alice, "2026-09-01T03:59", ("2026-09-01T04:00", "1000.00")
        )

        post_interest("2026-09")

        self.assertEqual(interest_amounts(account), [Decimal("54.79")])
        self.assertEqual(interest_amounts(whole_month), [Decimal("1.64")])  # 30 × 1000 × .02/365

    def test_days_after_the_account_closed_earn_nothing(self):
        # A million from Jul 31 to Sep 15, then withdrawn and the account closed. August was
        # missed and caught up on Sep 20, after the close: the closed account gets what it
        # earned while open (31 × 1,000,000.00 × 0.02 ÷ 365 = 1,698.63). September earns Sep 1
        # to 14 only: 14 × 1,000,000.00 × 0.02 ÷ 365 = 767.12, not the days after the close,
        # when August's interest sat in it (with them it would be 768.15).
        account = account_with_history(
            self.alice,
            "2026-07-31T00:00",
            ("2026-07-31T00:00:01", "1000000.00"),
            ("2026-09-15T10:00", "-1000000.00"),
        )
        account.close(by=self.alice)
        Account.objects.filter(pk=account.pk).update(closed_at=at("2026-09-15T10:00:01"))

        post_interest("2026-08")
        august = account.entries.get(kind=LedgerEntry.Kind.INTEREST)
        backdate(account, {august.pk: at("2026-09-20T00:05")})
        post_interest("2026-09")

        self.assertEqual(interest_amounts(account), [Decimal("1698.63"), Decimal("767.12")])
        # A month wholly after the close: nothing, and nothing marked.
        post_interest("2026-10")
        self.assertFalse(account.interest_postings.filter(period="2026-10").exists())
        self.assertEqual(balance(account), Decimal("2465.75"))

    def test_no_interest_and_no_mark_for_a_month_before_the_account_was_opened(self):
        account = account_with_history(
            self.alice, "2025-12-15T12:00", ("2025-12-15T12:00:01", "1000.00")
        )
        system = make_user("system@example.com")
        for period in ("2025-11", "1999-01", "0001-01"):
            with self.subTest(period=period):
                self.assertIsNone(account.post_interest(period, Decimal("0.02"), by=system))
                self.assertIn("posted to 0 accounts, 0 already", post_interest(period))
        self.assertFalse(account.interest_postings.exists())
        self.assertEqual(balance(account), Decimal("1000.00"))
        # The opening month: Dec 15 to 31, 17 × 1,000.00 × 0.02 ÷ 365 = 0.93.
        post_interest("2025-12")
        self.assertEqual(interest_amounts(account), [Decimal("0.93")])

    def test_running_it_twice_for_a_period_posts_once(self):
        account = account_with_history(
            self.alice, "2026-08-20T10:00", ("2026-08-20T10:00:01", "1000.00")
        )
        post_interest("2026-09")
        out = post_interest("2026-09")

        self.assertEqual(interest_amounts(account), [Decimal("1.64")])
        self.assertIn("posted to 0 accounts, 1 already posted", out)

    def test_missed_months_are_caught_up_once_each_in_any_order(self):
        # 1,000.00 since Jun 15; July (31 days) and August (31 days) were never posted. Each
        # earns on its own days: 31 × 1,000.00 × 0.02 ÷ 365 = 1.70. (Interest credited now is
        # dated now, so it earns from now on, not in the past months.)
        account = account_with_history(
            self.alice, "2026-06-15T10:00", ("2026-06-15T10:00:01", "1000.00")
        )

        post_interest("2026-08")
        post_interest("2026-07")
        for period in ("2026-07", "2026-08"):
            self.assertIn("posted to 0 accounts, 1 already posted", post_interest(period))

        self.assertEqual(interest_amounts(account), [Decimal("1.70"), Decimal("1.70")])
        self.assertEqual(
            sorted(account.interest_postings.values_list("period", flat=True)),
            ["2026-07", "2026-08"],
        )
        self.assertEqual(balance(account), Decimal("1003.40"))

    def test_without_a_period_it_posts_the_last_month_that_has_ended(self):
        last = Month.last_ended()
        account = account_with_history(
            self.alice, "2026-01-01T00:00", ("2026-01-01T00:00:01", "1000.00")
        )

        out = post_interest()

        days = len(last.days())
        expected = (days * Decimal("1000.00") * Decimal("0.02") / 365).quantize(Decimal("0.01"))
        self.assertIn(f"Interest {last} at", out)
        self.assertEqual(account.interest_postings.get().period, str(last))
        self.assertEqual(interest_amounts(account), [expected])

    @override_settings(JOINTBANK_INTEREST_RATE=Decimal("0.365"))  # exactly 0.1 % a day
    def test_it_rounds_half_to_even_and_skips_what_rounds_to_nothing(self):
        # Each balance is there for the last day of September only: balance × 0.001.
        cases = {"5.00": None, "15.00": "0.02", "25.00": "0.02", "35.00": "0.04"}
        accounts = {
            amount: account_with_history(
                self.alice, "2026-09-01T00:00", ("2026-09-30T12:00", amount), name=amount
            )
            for amount in cases
        }
        empty = Account.open("Empty", by=self.alice)
        Account.objects.filter(pk=empty.pk).update(created_at=at("2026-09-01T00:00"))

        post_interest("2026-09")

        for amount, expected in cases.items():
            with self.subTest(balance=amount):
                self.assertEqual(
                    interest_amounts(accounts[amount]), [Decimal(expected)] if expected else []
                )
                # A month that earned nothing is still marked done, so a re-run stays a no-op.
                self.assertTrue(accounts[amount].interest_postings.filter(period="2026-09"))
        self.assertTrue(empty.interest_postings.filter(period="2026-09"))
        self.assertFalse(empty.entries.exists())

    def test_it_refuses_a_month_that_has_not_ended_and_writes_nothing(self):
        account = account_with_history(
            self.alice, "2026-01-01T00:00", ("2026-01-01T00:00:01", "1000.00")
        )
        today = timezone.localdate()
        this_month = f"{today:%Y-%m}"
        next_month = f"{today.replace(day=1) + timedelta(days=32):%Y-%m}"
        for period in (this_month, next_month, "9999-12"):
            with self.subTest(period=period):
                with self.assertRaisesMessage(CommandError, f"{period} has not ended yet") as error:
                    post_interest(period)
                self.assertEqual(error.exception.returncode, 1)
                with self.assertRaises(BadPeriod):
                    account.post_interest(period, Decimal("0.02"), by=self.alice)
        self.assertFalse(InterestPosting.objects.exists())
        self.assertEqual(balance(account), Decimal("1000.00"))

    def test_it_refuses_a_malformed_period_and_writes_nothing(self):
        account = account_with_history(
            self.alice, "2026-01-01T00:00", ("2026-01-01T00:00:01", "1000.00")
        )
        for period in ["2026-13", "2026-00", "2026-1", "26-01", "2026-01-01", " 2026-01", "x"]:
            with (
                self.subTest(period=period),
                self.assertRaisesMessage(CommandError, "must be a month written YYYY-MM"),
            ):
                post_interest(period)
        self.assertFalse(InterestPosting.objects.exists())
        self.assertEqual(balance(account), Decimal("1000.00"))

    def test_it_reads_the_daily_balances_in_one_query_however_long_the_month(self):
        quiet = account_with_history(
            self.alice, "2026-08-01T00:00", ("2026-08-01T00:00:01", "1000.00"), name="Quiet"
        )
        busy_history = [("2026-08-01T00:00:01", "1000.00")] + [
            (f"2026-09-{day:02d}T{hour:02d}:00", "1.00") for day in range(1, 31) for hour in (9, 17)
        ]
        busy = account_with_history(self.alice, "2026-08-01T00:00", *busy_history, name="Busy")
        system = make_user("system@example.com")

        counts = {}
        for account in (quiet, busy):
            with CaptureQueriesContext(connection) as queries:
                account.post_interest("2026-09", Decimal("0.02"), by=system)
            ledger_reads = [
                query["sql"]
                for query in queries
                if query["sql"].lstrip().startswith("SELECT")
                and "accounts_ledgerentry" in query["sql"]
            ]
            self.assertEqual(len(ledger_reads), 1, ledger_reads)
            counts[account.name] = len(queries)
        self.assertEqual(counts["Quiet"], counts["Busy"])  # 2 entries a day change nothing
        # Busy: day d of September closes at 1,000 + 2d: Σ = 30,000 + 930 = 30,930.
        self.assertEqual(interest_amounts(busy), [Decimal("1.69")])  # × 0.02 ÷ 365 = 1.694…

    def test_its_help_states_the_formula_with_an_example(self):
        parser = PostInterestCommand().create_parser("manage.py", "post_interest")
        text = " ".join(parser.format_help().split())

        self.assertIn(
            "closing balance (at midnight, TIME_ZONE) x JOINTBANK_INTEREST_RATE / 365", text
        )
        self.assertIn("26 x 1,000.00 x 0.02 / 365 = 1.4246... = $1.42", text)
        self.assertIn("default: the last month that has ended", text)

    def test_the_database_refuses_a_second_posting_for_the_same_month(self):
        # The guarantee does not rest on the command alone: even code that skipped the
        # check could not record a month twice.
        account = Account.open("Savings", by=self.alice)
        InterestPosting.objects.create(account=account, period="2026-01")
        with self.assertRaises(IntegrityError), transaction.atomic():
            InterestPosting.objects.create(account=account, period="2026-01")


# One user holds all the accounts, past the default limit on accounts per user.
@override_settings(JOINTBANK_MAX_ACCOUNTS_PER_USER=100)
class InterestCommandProcessTests(TransactionTestCase):
    """The command as cron runs it: real OS processes, exit statuses."""

    ACCOUNTS = 100

    def run_command(self, *args) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "JOINTBANK_INTEREST_RATE": "0.02",
        }
        return subprocess.Popen(
            [sys.executable, "manage.py", "post_interest", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def test_two_runs_at_once_post_each_account_once(self):
        alice = make_user("alice@example.com")
        for number in range(self.ACCOUNTS):
            account_with_history(
                alice, "2026-01-01T00:00", ("2026-01-01T00:00:01", "1000.00"), name=f"#{number}"
            )
        last = Month.last_ended()
        expected = (len(last.days()) * Decimal("1000.00") * Decimal("0.02") / 365).quantize(
            Decimal("0.01")
        )

        runs = [self.run_command() for _ in range(2)]  # the default period, as cron runs it
        outputs = [run.communicate(timeout=120) for run in runs]

        self.assertEqual([run.returncode for run in runs], [0, 0], outputs)
        interest = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.INTEREST)
        self.assertEqual(interest.count(), self.ACCOUNTS)
        self.assertEqual(set(interest.values_list("amount", flat=True)), {expected})
        self.assertEqual(InterestPosting.objects.filter(period=str(last)).count(), self.ACCOUNTS)
        self.assertEqual(
            set(Account.objects.values_list("balance", flat=True)), {Decimal("1000.00") + expected}
        )
        posted = [int(out.split("posted to ")[1].split()[0]) for out, _ in outputs]
        self.assertEqual(sum(posted), self.ACCOUNTS, outputs)

    def test_a_month_not_ended_exits_1_with_a_clear_message(self):
        this_month = f"{timezone.localdate():%Y-%m}"
        for args, message in [
            (["--period", this_month], f"{this_month} has not ended yet"),
            (["--period", "2026-13"], "must be a month written YYYY-MM"),
        ]:
            with self.subTest(args=args):
                run = self.run_command(*args)
                out, err = run.communicate(timeout=60)
                self.assertEqual(run.returncode, 1)
                self.assertIn(message, err)
                self.assertEqual(out, "")
        self.assertFalse(InterestPosting.objects.exists())


def _test_database_url() -> str:
    """The URL of the database this test runs against (test_<name>), for a child process."""
    params = connection.settings_dict
    host = quote(params["HOST"] or "", safe="")
    return (
        f"postgres://{params['USER']}:{quote(params['PASSWORD'] or '', safe='')}@{host}:"
        f"{params['PORT']}/{params['NAME']}"
    )
