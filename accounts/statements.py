"""Account statements: the ledger between two dates as CSV, produced row by row.

An account may have millions of entries, so nothing here holds more than one chunk: the rows
are read in keyset chunks on the (account, seq) index, each chunk its own short query (no
transaction or server-side cursor stays open while a slow client downloads), and written out
as they come. A statement is a contiguous run of seq numbers, so it reconciles exactly: the
opening balance plus the amounts is the closing balance.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.utils import timezone

from .models import LedgerEntry

CHUNK = 2000
COLUMNS = [
    "seq",
    "created_at",
    "kind",
    "amount",
    "balance_after",
    "holder",
    "idempotency_key",
    "counterparty_account",
    "hash",
    "memo",
    # Who approved it, for a withdrawal or transfer that waited for another holder.
    "approved_by",
]
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class BadDates(ValueError):
    pass


def statement_dates(account, first: str | None, last: str | None) -> tuple[date, date]:
    """The first and last day (inclusive) from the query string; by default from the day the
    account was opened to today."""
    today = timezone.localdate()
    first_day, last_day = _parse("from", first), _parse("to", last)
    opened = timezone.localdate(account.created_at)
    first_day = first_day or (min(opened, last_day) if last_day else opened)
    last_day = last_day or max(today, first_day)
    if first_day > last_day:
        raise BadDates(f"`from` ({first_day}) is after `to` ({last_day}).")
    return first_day, last_day


def _parse(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        if not ISO_DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise BadDates(f"`{name}` must be a date written YYYY-MM-DD, like 2026-01-31.") from None


def statement_lines(account, first_day: date, last_day: date) -> Iterator[str]:
    """CSV lines: the header, the opening balance, every entry of those days, the closing
    balance. Amounts are plain signed decimals; times are UTC."""
    zone = timezone.get_current_timezone()
    start = datetime.combine(first_day, time.min, tzinfo=zone)
    end = datetime.combine(last_day, time.max, tzinfo=zone)
    entries = account.entries.all()
    in_range = entries.filter(created_at__gte=start, created_at__lte=end)
    first_seq = in_range.order_by("created_at", "seq").values_list("seq", flat=True).first()
    last_seq = in_range.order_by("-created_at", "-seq").values_list("seq", flat=True).first()

    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    if first_seq is None:
        before = entries.filter(created_at__lt=start).order_by("-created_at", "-seq").first()
        balance = before.balance_after if before else Decimal("0.00")
        yield writer.writerow(_balance_row(start, "opening_balance", balance))
        yield writer.writerow(_balance_row(end, "closing_balance", balance))
        return

    fields = [
        "seq",
        "created_at",
        "kind",
        "amount",
        "balance_after",
        "created_by__email",
        "idempotency_key",
        "counterparty_id",
        "hash",
        "memo",
        "approved_by__email",
    ]
    after, balance = first_seq - 1, None
    while after < last_seq:
        chunk = list(
            entries.filter(seq__gt=after, seq__lte=last_seq)
            .order_by("seq")
            .values_list(*fields)[:CHUNK]
        )
        if not chunk:
            break
        for values in chunk:
            seq, created_at, kind, amount, balance_after, email, key, counterparty = values[:8]
            hash_, memo, approver = values[8:]
            signed = amount if kind in LedgerEntry.CREDITS else -amount
            if balance is None:
                opening = balance_after - signed
                yield writer.writerow(_balance_row(start, "opening_balance", opening))
            balance = balance_after
            row = [seq, _utc(created_at), kind, f"{signed:.2f}", f"{balance_after:.2f}"]
            row += [_text(email), key or "", counterparty or "", hash_, _text(memo)]
            row.append(_text(approver or ""))
            yield writer.writerow(row)
        after = chunk[-1][0]
    assert balance is not None  # the days hold the entry first_seq: the loop read it
    yield writer.writerow(_balance_row(end, "closing_balance", balance))


def _balance_row(when: datetime, kind: str, balance: Decimal) -> list:
    return ["", _utc(when), kind, "", f"{balance:.2f}", "", "", "", "", "", ""]


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: str) -> str:
    """Spreadsheets run a cell that starts with = + - @ as a formula: keep e-mails and memos
    text."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") else value


class _Echo:
    """A file for csv.writer whose write() hands the line back: writerow() returns it."""

    def write(self, line: str) -> str:
        return line
