from decimal import Decimal

from django import template
from django.conf import settings

register = template.Library()

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


@register.filter
def money(value: Decimal, signed: str = "") -> str:
    """1234.5 -> "$1,234.50"; with "signed", "+$1,234.50" or "−$1,234.50" (a real minus)."""
    currency = settings.JOINTBANK_CURRENCY
    text = f"{abs(value):,.2f}"
    text = f"{SYMBOLS[currency]}{text}" if currency in SYMBOLS else f"{text} {currency}"
    if value < 0:
        return f"−{text}"
    return f"+{text}" if signed else text
