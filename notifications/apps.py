from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self):
        from accounts.signals import entry_appended

        from .tasks import notify_after_commit

        # Every new ledger entry, whichever path wrote it (the site, the admin, a command).
        entry_appended.connect(notify_after_commit, dispatch_uid="notify")
