"""`post_interest`: monthly interest through the locked path, at most once per account and month."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test import TransactionTestCase, override_settings

from accounts.models import Account, InterestPosting, LedgerEntry
from tests.base import JointAccountTestCase, make_user

ROOT = Path(__file__).resolve().parent.parent


# The test accounts are dated back to this, so the months the tests post for are after it.
OPENED = datetime(2025, 12, 15, tzinfo=UTC)


def post_interest(period="2026-01"):
    out = StringIO()
    call_command("post_interest", period=period, stdout=out)
    return out.getvalue()


@override_settings(JOINTBANK_INTEREST_RATE=Decimal("0.02"))
class PostInterestTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        Account.objects.filter(pk=cls.account.pk).update(created_at=OPENED)

    def interest_entries(self):
        return self.account.entries.filter(kind=LedgerEntry.Kind.INTEREST)

    def test_it_credits_a_month_of_interest_through_the_ledger(self):
        out = post_interest()

        # $1000.00 × 2% / 12 = $1.6666… → $1.67
        entry = self.interest_entries().get()
        self.assertEqual(entry.amount, Decimal("1.67"))
        self.assertEqual(entry.balance_after, Decimal("1001.67"))
        self.assertEqual(entry.signed_amount, Decimal("1.67"))
        self.assertEqual(self.balance(), Decimal("1001.67"))
        self.assertEqual(InterestPosting.objects.get(account=self.account).entry, entry)
        self.assertIn("posted to 1 accounts", out)
        call_command("verify_ledger", stdout=StringIO())  # the entry extends the hash chain

    def test_running_it_twice_for_a_period_posts_once(self):
        post_interest()
        out = post_interest()

        self.assertEqual(self.interest_entries().count(), 1)
        self.assertEqual(self.balance(), Decimal("1001.67"))
        self.assertIn("posted to 0 accounts, 1 already posted", out)

    def test_the_next_period_posts_again_on_the_new_balance(self):
        post_interest("2026-01")
        post_interest("2026-02")

        amounts = list(self.interest_entries().order_by("pk").values_list("amount", flat=True))
        self.assertEqual(amounts, [Decimal("1.67"), Decimal("1.67")])  # 1001.67 × 2%/12 = 1.669…
        self.assertEqual(self.balance(), Decimal("1003.34"))

    @override_settings(JOINTBANK_INTEREST_RATE=Decimal("0.12"))  # 1% a month
    def test_it_rounds_half_to_even_and_skips_what_rounds_to_nothing(self):
        cases = {"0.50": None, "1.50": "0.02", "2.50": "0.02", "3.50": "0.04", "0.00": None}
        accounts = {}
        for balance, _ in cases.items():
            account = Account.open(f"Holds {balance}", by=self.alice)
            if Decimal(balance):
                account.deposit(Decimal(balance), by=self.alice)
            accounts[balance] = account
        Account.objects.update(created_at=OPENED)

        post_interest()

        for balance, expected in cases.items():
            with self.subTest(balance=balance):
                entries = accounts[balance].entries.filter(kind=LedgerEntry.Kind.INTEREST)
                amounts = [str(amount) for amount in entries.values_list("amount", flat=True)]
                self.assertEqual(amounts, [expected] if expected else [])
                # A skipped month is still marked done, so a later re-run stays a no-op.
                self.assertTrue(accounts[balance].interest_postings.filter(period="2026-01"))

    def test_no_interest_for_a_month_before_the_account_was_opened(self):
        for period in ("2025-11", "1999-01", "0001-01"):
            self.assertIn("posted to 0 accounts", post_interest(period))
        self.assertFalse(self.interest_entries().exists())
        self.assertEqual(self.balance(), Decimal("1000.00"))
        self.assertIn("posted to 1 accounts", post_interest("2025-12"))  # the opening month

    def test_a_closed_account_earns_nothing_and_is_not_marked(self):
        closed = Account.open("Closed", by=self.carol)
        closed.close(by=self.carol)

        post_interest()

        self.assertFalse(closed.interest_postings.exists())
        self.assertFalse(closed.entries.exists())

    def test_it_refuses_a_malformed_or_future_period_and_writes_nothing(self):
        for period in ["2026-13", "2026-1", "26-01", "2026-01-01", "9999-12", ""]:
            with self.subTest(period=period), self.assertRaises(CommandError):
                post_interest(period)
        self.assertFalse(InterestPosting.objects.exists())
        self.assertEqual(self.balance(), Decimal("1000.00"))

    def test_the_database_refuses_a_second_posting_for_the_same_month(self):
        # The guarantee does not rest on the command alone: even code that skipped the
        # check could not record a month twice.
        InterestPosting.objects.create(account=self.account, period="2026-01")
        with self.assertRaises(IntegrityError), transaction.atomic():
            InterestPosting.objects.create(account=self.account, period="2026-01")


@override_settings(JOINTBANK_INTEREST_RATE=Decimal("0.02"))
class OverlappingInterestRunsTests(TransactionTestCase):
    ACCOUNTS = 150

    def setUp(self):
        alice = make_user("alice@example.com")
        for number in range(self.ACCOUNTS):
            Account.open(f"Account {number}", by=alice).deposit(Decimal("1000.00"), by=alice)
        Account.objects.update(created_at=OPENED)

    def test_two_runs_at_once_post_each_account_once(self):
        env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "JOINTBANK_INTEREST_RATE": "0.02",
        }
        command = [sys.executable, "manage.py", "post_interest", "--period", "2026-01"]
        runs = [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=120)[0] for run in runs]

        self.assertEqual([run.returncode for run in runs], [0, 0], outputs)
        interest = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.INTEREST)
        self.assertEqual(interest.count(), self.ACCOUNTS)
        self.assertEqual(InterestPosting.objects.count(), self.ACCOUNTS)
        self.assertEqual(
            set(Account.objects.values_list("balance", flat=True)), {Decimal("1001.67")}
        )
        posted = [int(out.split("posted to ")[1].split()[0]) for out in outputs]
        self.assertEqual(sum(posted), self.ACCOUNTS, outputs)


def _test_database_url() -> str:
    """The URL of the database this test runs against (test_<name>), for a child process."""
    from urllib.parse import quote

    params = connection.settings_dict
    host = quote(params["HOST"] or "", safe="")
    return (
        f"postgres://{params['USER']}:{quote(params['PASSWORD'] or '', safe='')}@{host}:"
        f"{params['PORT']}/{params['NAME']}"
    )
