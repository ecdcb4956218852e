"""The account page's balance chart: each day's closing balance over the last 90 days, drawn
as an inline SVG on the server (no chart library, no JavaScript).

One query answers it however long the ledger is: for each of the 90 days, the last entry
before the end of that day, found by one backward step in the (account, created_at) index
(ledger_account_created, which statements use too).
Days without a change carry the previous close forward, including the close before the first
day, so the line starts where the balance stood. Entries of one account are created under the
account's row lock, so their created_at order is their balance order (id breaks ties).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from .formatting import money

DAYS = 90
WIDTH, HEIGHT, MARGIN = 600, 160, 8  # the SVG's own units; CSS scales it to the page

CLOSING_BALANCES = """
SELECT day::date,
       (SELECT entry.balance_after
          FROM accounts_ledgerentry AS entry
         WHERE entry.account_id = %(account)s
           AND entry.created_at < (day + interval '1 day') AT TIME ZONE %(zone)s
         ORDER BY entry.created_at DESC, entry.id DESC
         LIMIT 1)
  FROM generate_series(%(first)s::timestamp, %(last)s::timestamp, interval '1 day') AS day
 ORDER BY day
"""


def closing_balances(account, today: date | None = None) -> list[tuple[date, Decimal]]:
    """(day, closing balance) for the last DAYS days up to today, from the first day on which
    the account had a ledger entry."""
    today = today or timezone.localdate()
    params = {
        "account": account.pk,
        "zone": timezone.get_current_timezone_name(),
        "first": today - timedelta(days=DAYS - 1),
        "last": today,
    }
    with connection.cursor() as cursor:
        cursor.execute(CLOSING_BALANCES, params)
        return [(day, balance) for day, balance in cursor.fetchall() if balance is not None]


@dataclass
class Chart:
    points: list[tuple[date, Decimal]]
    line: str  # SVG path data
    area: str
    low: tuple[date, Decimal]
    high: tuple[date, Decimal]
    end: tuple[str, str]  # where today's dot goes
    start: date  # the x axis's first day
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def first(self):
        return self.points[0]

    @property
    def last(self):
        return self.points[-1]

    @property
    def description(self) -> str:
        (first_day, first), (last_day, last) = self.first, self.last
        (low_day, low), (high_day, high) = self.low, self.high
        return (
            f"Closing balance each day from {first_day:%b %-d} to {last_day:%b %-d, %Y}: "
            f"{money(first)} at the start, {money(last)} at the end; lowest {money(low)} "
            f"on {low_day:%b %-d}, highest {money(high)} on {high_day:%b %-d}."
        )


def balance_chart(account, today: date | None = None) -> Chart | None:
    """The chart for the account page, or None before the account's first entry."""
    points = closing_balances(account, today)
    if not points:
        return None
    low = min(points, key=lambda point: point[1])
    high = max(points, key=lambda point: point[1])
    span = high[1] - low[1]
    # The x axis is always the whole 90 days, so a young account's line starts part-way in.
    first_day = (today or timezone.localdate()) - timedelta(days=DAYS - 1)

    def xy(day: date, balance: Decimal) -> str:
        x = (day - first_day).days * WIDTH / (DAYS - 1)
        share = (balance - low[1]) / span if span else Decimal("0.5")
        y = HEIGHT - MARGIN - float(share) * (HEIGHT - 2 * MARGIN)
        return f"{x:.1f},{y:.1f}"

    coordinates = [xy(day, balance) for day, balance in points]
    line = "M" + " L".join(coordinates)
    start_x, end_x = coordinates[0].split(",")[0], coordinates[-1].split(",")[0]
    area = f"{line} L{end_x},{HEIGHT} L{start_x},{HEIGHT} Z"
    end_x, end_y = coordinates[-1].split(",")
    return Chart(
        points=points, line=line, area=area, low=low, high=high, end=(end_x, end_y), start=first_day
    )
