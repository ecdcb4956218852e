from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Joint accounts"

    def ready(self):
        from allauth.mfa.signals import authenticator_added
        from django.contrib.auth.signals import user_logged_in

        from . import session_expiry, two_factor

        user_logged_in.connect(session_expiry.start)
        authenticator_added.connect(two_factor.record_setup)
