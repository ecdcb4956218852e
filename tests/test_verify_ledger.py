from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path
from urllib.parse import quote

from django.core.management import CommandError, call_command
from django.db import connection
from django.test import TransactionTestCase

from accounts.models import Account
from tests.base import JointAccountTestCase, make_user
from tests.tampering import tamper

ROOT = Path(__file__).resolve().parent.parent


class VerifyLedgerTests(JointAccountTestCase):
    """Household: seq 1 deposit 1000 (alice), 2 withdrawal 100 (bob), 3 transfer 50 to Savings,
    4 deposit 25.50. Savings: seq 1 transfer_in 50."""

    def setUp(self):
        super().setUp()
        self.savings = Account.open("Savings", by=self.alice)
        self.account.withdraw(Decimal("100.00"), by=self.bob)
        self.account.transfer(self.savings, Decimal("50.00"), by=self.alice)
        self.account.deposit(Decimal("25.50"), by=self.bob)

    def verify(self, *args):
        out = StringIO()
        call_command("verify_ledger", *args, stdout=out)
        return out.getvalue()

    def assertFinds(self, *expected, args=()):
        out = StringIO()
        with self.assertRaises(CommandError) as raised:
            call_command("verify_ledger", *args, stdout=out)
        for text in expected:
            self.assertIn(text, str(raised.exception))
            self.assertIn(text, out.getvalue())
        return out.getvalue()

    def entry(self, seq, account=None):
        return (account or self.account).entries.get(seq=seq)

    def test_a_clean_ledger_passes_with_a_summary_per_account(self):
        output = self.verify()
        self.account.refresh_from_db()
        self.assertIn(
            f"#{self.account.pk} Household: OK, 4 entries, balance 875.50, "
            f"chain head {self.account.last_hash}",
            output,
        )
        self.assertIn(f"#{self.savings.pk} Savings: OK, 1 entry, balance 50.00", output)

    def test_it_finds_a_changed_amount(self):
        tamper("UPDATE accounts_ledgerentry SET amount = 10 WHERE id = %s", [self.entry(2).pk])
        self.assertFinds(
            f"entry id {self.entry(2).pk} (seq 2): balance_after is 900.00, "
            "but the entries up to it add up to 990.00"
        )

    def test_it_finds_a_changed_author_although_every_sum_still_adds_up(self):
        tamper(
            "UPDATE accounts_ledgerentry SET created_by_id = %s WHERE id = %s",
            [self.alice.pk, self.entry(2).pk],
        )
        self.assertFinds(f"entry id {self.entry(2).pk} (seq 2): the hash does not match")

    def test_it_finds_a_row_rewritten_with_its_own_hash_recomputed(self):
        # The forger fixes the row's hash too; the next row's hash no longer chains to it.
        from accounts.models import chain_hash

        entry = self.entry(4)
        entry.amount, entry.balance_after = Decimal("1025.50"), Decimal("1875.50")
        forged = chain_hash(entry, previous=self.entry(3).hash)
        tamper(
            "UPDATE accounts_ledgerentry SET amount = 1025.50, balance_after = 1875.50, "
            "hash = %s WHERE id = %s",
            [forged, entry.pk],
        )
        Account.objects.filter(pk=self.account.pk).update(balance=Decimal("1875.50"))
        self.assertFinds("the account's chain head (seq 4) is not its newest entry")

    def test_it_finds_a_deleted_row(self):
        tamper("DELETE FROM accounts_ledgerentry WHERE id = %s", [self.entry(2).pk])
        self.assertFinds(f"entry id {self.entry(3).pk} (seq 3): expected seq 2")

    def test_it_finds_a_balance_that_the_entries_do_not_explain(self):
        Account.objects.filter(pk=self.account.pk).update(balance=Decimal("1000000.00"))
        self.assertFinds("the balance is 1000000.00, but the entries add up to 875.50")

    def test_it_finds_a_transfer_whose_halves_disagree(self):
        into = self.entry(1, self.savings)
        tamper(
            "UPDATE accounts_ledgerentry SET counterparty_id = %s WHERE id = %s",
            [self.savings.pk, into.pk],
        )
        out = self.entry(3)
        output = self.assertFinds(
            f"entry id {out.pk} (seq 3): the transfer's other half (entry id {into.pk}) "
            "does not match it"
        )
        self.assertIn(f"entry id {into.pk} (seq 1): the hash does not match", output)

    def test_it_reports_every_bad_account_and_exits_with_the_first(self):
        tamper("UPDATE accounts_ledgerentry SET amount = 10 WHERE id = %s", [self.entry(2).pk])
        Account.objects.filter(pk=self.savings.pk).update(balance=Decimal("1.00"))
        out = StringIO()
        with self.assertRaisesMessage(CommandError, "2 account(s) failed verification. First: #"):
            call_command("verify_ledger", stdout=out)
        self.assertEqual(out.getvalue().count("FAILED"), 2)

    def test_it_checks_one_account_on_request(self):
        Account.objects.filter(pk=self.account.pk).update(balance=Decimal("1.00"))
        output = self.verify("--account", str(self.savings.pk))
        self.assertIn("Savings: OK", output)
        self.assertNotIn("Household", output)
        self.assertFinds("Household", args=("--account", str(self.account.pk)))

    def test_an_unknown_account_is_an_error(self):
        with self.assertRaisesMessage(CommandError, "There is no account with id 999999"):
            self.verify("--account", "999999")


class VerifyLedgerProcessTests(TransactionTestCase):
    def test_the_command_exits_non_zero_and_names_the_bad_row(self):
        alice = make_user("alice@example.com")
        account = Account.open("Household", by=alice)
        account.deposit(Decimal("5.00"), by=alice)
        command = [sys.executable, "manage.py", "verify_ledger"]
        env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_DEBUG": "1"}

        clean = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        self.assertEqual(clean.returncode, 0, clean.stderr)
        self.assertIn("Household: OK, 1 entry", clean.stdout)

        Account.objects.filter(pk=account.pk).update(balance=Decimal("6.00"))
        bad = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("the balance is 6.00, but the entries add up to 5.00", bad.stderr)


def _database_url() -> str:
    """The test database's URL, for a child process."""
    params = connection.get_connection_params()
    user = quote(params.get("user", ""), safe="")
    if params.get("password"):
        user += ":" + quote(params["password"], safe="")
    url = f"postgres://{user}@/{params['dbname']}?host={quote(params.get('host', ''), safe='')}"
    if params.get("port"):
        url += f"&port={params['port']}"
    return url
