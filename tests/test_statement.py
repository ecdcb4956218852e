from __future__ import annotations

import csv
import io
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from unittest import mock

from django.http import StreamingHttpResponse
from django.urls import reverse

from accounts import statements
from accounts.models import Account
from tests.base import JointAccountTestCase

HEADER = (
    "seq,created_at,kind,amount,balance_after,holder,idempotency_key,counterparty_account,hash,"
    "memo,approved_by"
)


@contextmanager
def on(day: str, hour: int = 12):
    """Entries written inside are stamped at noon (UTC) on that day."""
    moment = datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


class StatementTests(JointAccountTestCase):
    """Household gets 1000.00 today (setUpTestData); these tests add history on fixed days."""

    def setUp(self):
        super().setUp()
        self.account = Account.open("Trip", by=self.alice)  # a fresh account with dated history
        self.account.memberships.create(user=self.bob)
        Account.objects.filter(pk=self.account.pk).update(
            created_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
        self.savings = Account.open("Savings", by=self.alice)
        with on("2026-01-10"):
            self.account.deposit(Decimal("1200.00"), by=self.alice)
        with on("2026-01-20"):
            self.account.withdraw(Decimal("84.20"), by=self.bob, idempotency_key=None)
            self.account.transfer(self.savings, Decimal("15.80"), by=self.alice, memo="=1+1")
        with on("2026-02-01"):
            self.account.deposit(Decimal("0.05"), by=self.alice)

    def get(self, **query):
        return self.client.get(self.url("statement", **query))

    def rows(self, response):
        self.assertEqual(response.status_code, 200)
        self.assertIsInstance(response, StreamingHttpResponse)
        text = b"".join(response.streaming_content).decode()
        return list(csv.reader(io.StringIO(text)))

    def test_it_streams_the_entries_of_those_days_between_opening_and_closing_balances(self):
        response = self.get(**{"from": "2026-01-15", "to": "2026-01-31"})

        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertEqual(
            response["Content-Disposition"],
            f'attachment; filename="statement-{self.account.pk}-2026-01-15-to-2026-01-31.csv"',
        )
        rows = self.rows(response)
        self.assertEqual(",".join(rows[0]), HEADER)
        self.assertEqual(
            rows[1],
            ["", "2026-01-15T00:00:00.000000Z", "opening_balance", "", "1200.00"] + [""] * 6,
        )
        withdrawal, transfer = self.account.entries.filter(seq__in=[2, 3]).order_by("seq")
        self.assertEqual(
            rows[2],
            ["2", "2026-01-20T12:00:00.000000Z", "withdrawal", "-84.20", "1115.80"]
            + ["bob@example.com", "", "", withdrawal.hash, "", ""],
        )
        self.assertEqual(
            rows[3],
            ["3", "2026-01-20T12:00:00.000000Z", "transfer_out", "-15.80", "1100.00"]
            # A memo that a spreadsheet would run as a formula stays text.
            + ["alice@example.com", "", str(self.savings.pk), transfer.hash, "'=1+1", ""],
        )
        self.assertEqual(
            rows[4],
            ["", "2026-01-31T23:59:59.999999Z", "closing_balance", "", "1100.00"] + [""] * 6,
        )
        self.assertEqual(len(rows), 5)

    def test_the_amounts_reconcile_opening_to_closing(self):
        rows = self.rows(self.get())
        opening, closing = Decimal(rows[1][4]), Decimal(rows[-1][4])
        self.assertEqual(opening + sum(Decimal(row[3]) for row in rows[2:-1]), closing)
        self.assertEqual((opening, closing), (Decimal("0.00"), Decimal("1100.05")))
        self.assertEqual([row[0] for row in rows[2:-1]], ["1", "2", "3", "4"])

    def test_without_dates_it_runs_from_the_opening_of_the_account_to_today(self):
        response = self.get()
        self.assertIn("-2026-01-01-to-", response["Content-Disposition"])
        self.assertEqual(len(self.rows(response)), 1 + 4 + 2)

    def test_only_a_to_before_the_opening_is_a_range_of_that_one_day(self):
        response = self.get(to="2020-01-01")
        self.assertEqual(response.status_code, 200)
        self.assertIn("-2020-01-01-to-2020-01-01", response["Content-Disposition"])

    def test_a_range_without_entries_still_has_the_balances(self):
        rows = self.rows(self.get(**{"from": "2026-01-25", "to": "2026-01-26"}))
        self.assertEqual(
            [row[2:5] for row in rows[1:]],
            [
                ["opening_balance", "", "1100.00"],
                ["closing_balance", "", "1100.00"],
            ],
        )
        before = self.rows(self.get(**{"from": "2025-01-01", "to": "2025-12-31"}))
        self.assertEqual([row[4] for row in before[1:]], ["0.00", "0.00"])

    def test_the_receiving_account_shows_the_transfer_in(self):
        url = reverse("accounts:statement", args=[self.savings.pk])
        rows = self.rows(self.client.get(url + "?from=2026-01-01"))
        self.assertEqual(rows[2][2:5], ["transfer_in", "15.80", "15.80"])
        self.assertEqual(rows[2][7], str(self.account.pk))
        self.assertEqual(rows[2][9], "'=1+1")  # the memo travels with the money

    def test_it_reads_in_chunks_and_gives_the_same_csv(self):
        whole = self.rows(self.get())
        # The session, the user and the account; the seq range; then one query per chunk.
        with mock.patch.object(statements, "CHUNK", 1), self.assertNumQueries(3 + 2 + 4):
            chunked = self.rows(self.get())
        self.assertEqual(chunked, whole)

    def test_bad_dates_are_a_422(self):
        for query in [
            {"from": "2026-13-01"},
            {"from": "2026-02-30"},
            {"to": "26-01-01"},
            {"to": "20260101"},
            {"from": "yesterday"},
            {"from": "２０２６-01-01"},
            {"from": "2026-01-01T00:00"},
            {"from": "2026-02-01", "to": "2026-01-01"},
        ]:
            with self.subTest(query=query):
                response = self.get(**query)
                self.assertEqual(response.status_code, 422)
                self.assertEqual(response["Content-Type"], "text/plain; charset=utf-8")
                self.assertRegex(response.content.decode(), "YYYY-MM-DD|is after")

    def test_only_holders_get_a_statement(self):
        self.client.force_login(self.carol)
        self.assertEqual(self.get().status_code, 404)
        self.client.logout()
        self.assertEqual(self.get().status_code, 302)

    def test_spreadsheet_formulas_in_e_mails_stay_text(self):
        self.assertEqual(statements._text("=cmd@example.com"), "'=cmd@example.com")
        self.assertEqual(statements._text("alice@example.com"), "alice@example.com")

    def test_the_account_page_links_to_it(self):
        page = self.client.get(self.url("detail"))
        self.assertContains(page, f'action="{self.url("statement")}"')
        self.assertContains(page, 'type="date" name="from"')
