from __future__ import annotations

from django import template

from accounts import formatting

register = template.Library()
register.filter("money", formatting.money)
