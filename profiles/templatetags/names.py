from __future__ import annotations

from django import template

from profiles.models import display_name as _display_name

register = template.Library()


@register.filter
def display_name(user) -> str:
    """`{{ entry.created_by|display_name }}`: the name people see (see profiles.models)."""
    return _display_name(user)
