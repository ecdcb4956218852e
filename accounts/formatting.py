"""How amounts and days are shown, in pages, messages and refusals alike."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import dateformat, timezone

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money(value: Decimal | int, signed: str = "") -> str:
    """1234.5 -> "$1,234.50"; with "signed", "+$1,234.50" or "−$1,234.50" (a real minus)."""
    currency = settings.JOINTBANK_CURRENCY
    text = f"{abs(value):,.2f}"
    text = f"{SYMBOLS[currency]}{text}" if currency in SYMBOLS else f"{text} {currency}"
    if value < 0:
        return f"−{text}"
    return f"+{text}" if signed else text


def day(moment: datetime) -> str:
    """The local calendar day, as the pages show it: "Jan 31, 2026"."""
    return dateformat.format(timezone.localtime(moment), "M j, Y")


def moment(when: datetime) -> str:
    """A local time to the minute, with its zone: "Jan 31, 14:05 UTC"."""
    return dateformat.format(timezone.localtime(when), "M j, H:i T")


def clock(moment: datetime) -> str:
    """The local time of day, as the pages show it: "14:02"."""
    return dateformat.format(timezone.localtime(moment), "H:i")
