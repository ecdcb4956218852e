from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self):
        from django.db.models.signals import post_save

        from accounts.models import LedgerEntry

        from .tasks import notify_after_commit

        # Every new ledger entry, whichever path wrote it (the site, the admin, a command).
        post_save.connect(notify_after_commit, sender=LedgerEntry, dispatch_uid="notify")
