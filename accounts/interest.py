"""The interest an account earned in a month, from its daily closing balances (Actual/365).

Each day of the month earns that day's closing balance × the annual rate ÷ 365; the month's
interest is the sum, rounded half-even to the cent once, at the end. A day ends at midnight in
TIME_ZONE, and its closing balance is the `balance_after` of the account's last ledger entry
stamped before that midnight. A day at whose end the account was not open (not opened yet, or
closed already) earns nothing. So money earns for the days it was there, and a deposit made just
before the job runs earns nothing for the month before it.

Example: opened on the 5th of a 30-day month with $1,000.00 at 2 % a year → days 5 to 30, 26
days × 1,000.00 × 0.02 ÷ 365 = 1.4246… → $1.42.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone

CENT = Decimal("0.01")
DAYS_IN_YEAR = 365
PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")

# Each day's closing balance: for every midnight, the newest entry stamped before it, found by
# one short backward scan of the (account, created_at) index (ledger_account_created). That is
# at most 31 index probes per month, however many entries the month or the ledger holds; a day
# with no entry before its end (before the first deposit) has no row and adds nothing. The seq
# tie-break never decides in practice (created_at is stamped under the row lock, so it follows
# seq) but keeps the answer defined for entries stamped in the same microsecond.
DAILY_BALANCES_SQL = """
    SELECT coalesce(sum(closing.balance_after), 0)
    FROM unnest(%s::timestamptz[]) AS day (ends)
    CROSS JOIN LATERAL (
        SELECT entry.balance_after
        FROM accounts_ledgerentry AS entry
        WHERE entry.account_id = %s AND entry.created_at < day.ends
        ORDER BY entry.created_at DESC, entry.seq DESC
        LIMIT 1
    ) AS closing
"""


class BadPeriod(ValueError):
    """Not a month interest can be posted for; nothing was written."""


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = PERIOD.fullmatch(text)
        if match is None:
            raise BadPeriod(f"The period must be a month written YYYY-MM, like 2026-01: {text!r}.")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def last_ended(cls) -> Month:
        """The month before today's, in TIME_ZONE."""
        today = timezone.localdate()
        if today.month == 1:
            return cls(today.year - 1, 12)
        return cls(today.year, today.month - 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def check_ended(self) -> None:
        """Raise BadPeriod unless the month's last day has ended (midnight in TIME_ZONE):
        interest is owed for whole months, once each, so a month still running cannot be
        posted without leaving out its remaining days for good."""
        today = timezone.localdate()
        if (self.year, self.month) >= (today.year, today.month):
            last = Month.last_ended()
            raise BadPeriod(
                f"{self} has not ended yet ({settings.TIME_ZONE}): interest is posted for whole "
                f"months only, from the day after the month's last. The last month that has "
                f"ended is {last}."
            )

    def days(self) -> list[date]:
        first = date(self.year, self.month, 1)
        following = date(self.year + self.month // 12, self.month % 12 + 1, 1)
        return [first + timedelta(days=n) for n in range((following - first).days)]

    def day_ends(self) -> list[datetime]:
        """Midnight at the end of each of the month's days, in TIME_ZONE (23 or 25 hours
        apart across a daylight-saving change: a day is a calendar day)."""
        zone = ZoneInfo(settings.TIME_ZONE)
        return [
            datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone) for day in self.days()
        ]

    @property
    def start(self) -> datetime:
        return datetime.combine(self.days()[0], time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))

    @property
    def end(self) -> datetime:
        return self.day_ends()[-1]


def open_day_ends(account, month: Month) -> list[datetime]:
    """The ends of the month's days at which `account` was open: the days that earn."""
    return [
        end
        for end in month.day_ends()
        if account.created_at < end and (account.closed_at is None or end < account.closed_at)
    ]


def balance_days(account, day_ends: list[datetime]) -> Decimal:
    """Σ of the account's closing balances at these midnights: one query."""
    with connection.cursor() as cursor:
        cursor.execute(DAILY_BALANCES_SQL, [day_ends, account.pk])
        return cursor.fetchone()[0]


def earned(account, day_ends: list[datetime], annual_rate: Decimal) -> Decimal:
    """The interest of these days, rounded half-even to the cent once (never per day)."""
    return (balance_days(account, day_ends) * annual_rate / DAYS_IN_YEAR).quantize(
        CENT, ROUND_HALF_EVEN
    )
