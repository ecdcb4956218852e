from __future__ import annotations

from django.contrib import admin

from accounts.admin import ReadOnlyAdmin

from .models import Notification, Preference


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """Read-only: what the worker claimed and sent. Started but not sent means the worker died
    during that SMTP exchange; it is never sent again (README, Notifications)."""

    list_display = ["about", "recipient", "claimed_at", "started_at", "sent_at"]
    list_filter = [("sent_at", admin.EmptyFieldListFilter)]
    list_select_related = [
        "entry__account",
        "request_asked__account",
        "request_asked__target",
        "request_decided__account",
        "request_decided__target",
        "rule_change__account",
        "recipient",
    ]
    fields = (
        "account",
        "entry",
        "request_asked",
        "request_decided",
        "rule_change",
        "recipient",
        "claimed_at",
        "started_at",
        "sent_at",
    )
    readonly_fields = fields


@admin.register(Preference)
class PreferenceAdmin(ReadOnlyAdmin):
    """Read-only: each holder sets their own on the account page."""

    list_display = ["account", "user", "when", "above"]
    list_select_related = ["account", "user"]
    fields = ("account", "user", "when", "above")
    readonly_fields = fields
