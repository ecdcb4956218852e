from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from accounts.chart import CLOSING_BALANCES, DAYS, balance_chart, closing_balances
from accounts.management.commands.verify_ledger import check_ledger
from accounts.models import Account
from tests.backdate import backdate
from tests.base import HX, JointAccountTestCase


def days_ago(n: int, hour: int = 12):
    day = timezone.localdate() - timedelta(days=n)
    return timezone.make_aware(datetime.combine(day, time(hour)))


class ClosingBalanceTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        dates = {entry.pk: days_ago(120) for entry in cls.account.entries.all()}  # the $1000.00
        for n, hour, kind, amount in [
            (10, 9, "deposit", "50.00"),
            (10, 17, "withdraw", "20.00"),  # closes the day at 1030.00
            (2, 23, "deposit", "5.00"),  # 23:00 still belongs to that day
        ]:
            entry = getattr(cls.account, kind)(Decimal(amount), by=cls.bob)
            dates[entry.pk] = days_ago(n, hour)
        backdate(cls.account, dates)

    def test_it_gives_each_days_closing_balance_carrying_quiet_days_forward(self):
        points = dict(closing_balances(self.account))
        today = timezone.localdate()
        self.assertEqual(len(points), DAYS)
        self.assertEqual(min(points), today - timedelta(days=DAYS - 1))
        self.assertEqual(points[today - timedelta(days=DAYS - 1)], Decimal("1000.00"))
        self.assertEqual(points[today - timedelta(days=11)], Decimal("1000.00"))
        self.assertEqual(points[today - timedelta(days=10)], Decimal("1030.00"))
        self.assertEqual(points[today - timedelta(days=3)], Decimal("1030.00"))
        self.assertEqual(points[today - timedelta(days=2)], Decimal("1035.00"))
        self.assertEqual(points[today], Decimal("1035.00"))

    def test_the_dated_back_ledger_still_verifies(self):
        self.account.refresh_from_db()
        self.assertEqual(check_ledger(self.account), (4, None))

    def test_it_takes_one_query(self):
        with self.assertNumQueries(1):
            balance_chart(self.account)

    def test_it_reads_the_ledger_through_the_account_time_index(self):
        # One backward step per day down an (account, created_at) index: "account = X AND
        # created_at < day ORDER BY created_at DESC, id DESC LIMIT 1" instead of reading the
        # account's whole ledger. (The plan itself is not asserted: on a test-sized table the
        # planner may pick any index that starts with the account, and since the history
        # filters added three more it did; docs/benchmarks.md has the plan on 1M rows.)
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, "accounts_ledgerentry")
        index = constraints["ledger_account_created"]
        self.assertTrue(index["index"])
        self.assertEqual(index["columns"], ["account_id", "created_at"])
        self.assertIn("ORDER BY entry.created_at DESC", " ".join(CLOSING_BALANCES.split()))

    def test_the_chart_describes_itself_for_screen_readers(self):
        chart = balance_chart(self.account)
        self.assertIn("$1,000.00 at the start, $1,035.00 at the end", chart.description)
        self.assertIn("lowest $1,000.00", chart.description)
        self.assertIn("highest $1,035.00", chart.description)

    def test_the_line_rises_with_the_balance(self):
        chart = balance_chart(self.account)
        ys = [float(point.split(",")[1]) for point in chart.line[1:].split(" L")]
        self.assertEqual(len(ys), DAYS)
        self.assertEqual(ys[0], max(ys))  # SVG y grows downwards: the lowest balance
        self.assertEqual(ys[-1], min(ys))  # the highest


class ChartOnThePageTests(JointAccountTestCase):
    def test_the_account_page_shows_an_inline_svg_with_title_and_description(self):
        response = self.client.get(self.url("detail"))
        self.assertContains(response, '<figure id="balance-chart" class="chart">')
        self.assertContains(response, 'role="img"')
        self.assertContains(response, '<title id="balance-chart-title">Balance over the last')
        self.assertContains(response, "$1,000.00 at the end")

    def test_it_refreshes_with_the_polled_balance(self):
        etag = self.client.get(self.url("balance"), **HX)["ETag"]
        self.account.deposit(Decimal("5.00"), by=self.bob)
        response = self.client.get(self.url("balance"), HTTP_IF_NONE_MATCH=etag, **HX)
        self.assertContains(
            response, '<figure id="balance-chart" class="chart" hx-swap-oob="true">'
        )
        self.assertContains(response, "$1,005.00 at the end")

    def test_it_refreshes_after_the_holders_own_deposit(self):
        response = self.client.post(self.url("deposit"), {"amount": "7.00"}, **HX)
        self.assertContains(response, 'id="balance-chart" class="chart" hx-swap-oob="true"')
        self.assertContains(response, "$1,007.00 at the end")

    def test_a_new_account_has_no_chart_yet(self):
        account = Account.open("Empty", by=self.alice)
        self.assertIsNone(balance_chart(account))
        response = self.client.get(f"/accounts/{account.pk}/")
        self.assertContains(response, 'id="balance-chart"')
        self.assertNotContains(response, "<svg")


class ClosingBalanceTimeZoneTests(JointAccountTestCase):
    def test_days_end_at_local_midnight(self):
        # 03:00 UTC on Jan 2 is 22:00 on Jan 1 in New York: in that zone it closes Jan 1.
        entry = self.account.deposit(Decimal("5.00"), by=self.bob)
        backdate(
            self.account,
            {
                self.account.entries.order_by("pk").first().pk: datetime(2025, 12, 1, tzinfo=UTC),
                entry.pk: datetime(2026, 1, 2, 3, 0, tzinfo=UTC),
            },
        )
        with timezone.override("America/New_York"):
            points = dict(closing_balances(self.account, today=date(2026, 1, 3)))
        self.assertEqual(points[date(2025, 12, 31)], Decimal("1000.00"))
        self.assertEqual(points[date(2026, 1, 1)], Decimal("1005.00"))
