from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self):
        from accounts.signals import account_changed

        from .tasks import notify_after_commit

        # Every new ledger entry, approval request made or answered and rule change, whichever
        # path wrote it (the site, the admin, a command, the expiry job).
        account_changed.connect(notify_after_commit, dispatch_uid="notify")
