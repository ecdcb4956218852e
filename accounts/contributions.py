"""Who put in what: per holder, money in, money out and the net, for the account's life and
for this month, from the running totals a database trigger keeps (MonthlyContribution).

One aggregate query over a few rows per holder, whatever the length of the ledger. Money in
is deposits and transfers in (from another account the same person holds); money out is
withdrawals and transfers out. Interest is nobody's contribution: it is its own line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection

from .models import Account, Membership

ZERO = Decimal("0.00")
# The totals of a set of ledger rows, per (account, user, UTC month): what the trigger of
# migration 0010 adds for each INSERT statement (`{entries}`: the statement's new rows) and,
# over the whole ledger, the migration's backfill (and tests that date entries back).
TOTALS_FROM_LEDGER = """
INSERT INTO accounts_monthlycontribution
    (account_id, holder_id, month, paid_in, taken_out, interest)
SELECT account_id, created_by_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date,
    coalesce(sum(amount) FILTER (WHERE kind IN ('deposit', 'transfer_in')), 0),
    coalesce(sum(amount) FILTER (WHERE kind IN ('withdrawal', 'transfer_out')), 0),
    coalesce(sum(amount) FILTER (WHERE kind = 'interest'), 0)
FROM {entries}
{where}
GROUP BY 1, 2, 3
"""


# Per holder, for the life of the account and for `month`. Written out rather than built with
# the ORM: every deposit's answer and every poll that finds a change runs it, and compiling
# the ORM's aggregate cost about 1 ms of CPU each time, the statement itself 0.1 ms.
TOTALS_PER_HOLDER = """
SELECT holder_id, sum(paid_in), sum(taken_out), sum(interest),
       sum(paid_in) FILTER (WHERE month = %(month)s),
       sum(taken_out) FILTER (WHERE month = %(month)s),
       sum(interest) FILTER (WHERE month = %(month)s)
FROM accounts_monthlycontribution
WHERE account_id = %(account)s
GROUP BY holder_id
"""
TOTALS = ["total_in", "total_out", "total_interest", "month_in", "month_out", "month_interest"]


@dataclass
class HolderContribution:
    user: Any  # the User, with its profile loaded
    current: bool  # False: a former holder (or staff who corrected the balance)
    paid_in: Decimal = ZERO
    taken_out: Decimal = ZERO
    paid_in_month: Decimal = ZERO
    taken_out_month: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.paid_in - self.taken_out

    @property
    def net_month(self) -> Decimal:
        return self.paid_in_month - self.taken_out_month


@dataclass
class Contributions:
    holders: list[HolderContribution]
    interest: Decimal
    interest_month: Decimal
    month: date

    def of(self, user) -> HolderContribution | None:
        return next((row for row in self.holders if row.user.pk == user.pk), None)


def this_month(now: datetime | None = None) -> date:
    """The first day of the current month, UTC: the months the totals are kept in."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.date().replace(day=1)


def contributions(account: Account, memberships: list[Membership] | None = None) -> Contributions:
    """Every holder, current and former, in the order they joined, with their totals; then
    anyone else who moved money here (staff corrections). `memberships`: the account's,
    with their users (and profiles) loaded, if the caller has them already."""
    month = this_month()
    with connection.cursor() as cursor:
        cursor.execute(TOTALS_PER_HOLDER, {"account": account.pk, "month": month})
        totals = {row[0]: dict(zip(TOTALS, row[1:], strict=True)) for row in cursor.fetchall()}
    if memberships is None:
        # Sorted here: with an ORDER BY, compiling the query costs the ORM a third more CPU.
        memberships = sorted(
            account.memberships.select_related("user__profile"),
            key=lambda membership: (membership.joined_at, membership.pk),
        )
    rows: dict[int, HolderContribution] = {}
    for membership in memberships:
        row = rows.setdefault(membership.user_id, HolderContribution(membership.user, False))
        row.current = row.current or membership.left_at is None
    others = [pk for pk, total in totals.items() if pk not in rows and _moved_money(total)]
    if others:
        users = get_user_model().objects.select_related("profile").in_bulk(others)
        for pk in others:
            rows[pk] = HolderContribution(users[pk], False)
    for pk, row in rows.items():
        total = totals.get(pk)
        if total:
            row.paid_in, row.taken_out = total["total_in"], total["total_out"]
            row.paid_in_month = total["month_in"] or ZERO
            row.taken_out_month = total["month_out"] or ZERO
    return Contributions(
        holders=list(rows.values()),
        interest=sum((t["total_interest"] for t in totals.values()), ZERO),
        interest_month=sum((t["month_interest"] or ZERO for t in totals.values()), ZERO),
        month=month,
    )


def _moved_money(total) -> bool:
    return bool(total["total_in"] or total["total_out"])
