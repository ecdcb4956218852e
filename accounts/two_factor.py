"""Two-factor sign-in where it is required: for staff before any admin page, and for every
holder before any account page when JOINTBANK_REQUIRE_MFA is on.

Required means: the user has an authenticator and this session has proved it (allauth records
an "mfa" step when a code is entered at sign-in or at reauthentication; `record_setup` below
adds one when an authenticator is set up). A user without one is sent to set one up; a user
whose session never proved it (signed in before it was set up elsewhere, or through the old
admin sign-in) is asked for a code.
"""

from __future__ import annotations

from allauth.account.authentication import get_authentication_records
from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect

from .middleware import page_to_return_to

# Recovery codes are a backup of an authenticator, not one by themselves.
AUTHENTICATOR_TYPES = [t for t in Authenticator.Type if t != Authenticator.Type.RECOVERY_CODES]


def record_setup(sender, request, user, authenticator, **kwargs) -> None:
    """On allauth's authenticator_added: the code just entered to set the authenticator up
    proves it, as a code at sign-in would. Without this the user would be asked for a second
    code (a new one, 30 seconds later) right after setting it up. record_authentication is
    allauth's internal way to add such a record (there is no public one);
    tests/test_admin_sign_in.py notices if it stops working."""
    if authenticator.type in AUTHENTICATOR_TYPES:
        record_authentication(request, user, "mfa", type=authenticator.type, id=authenticator.pk)


class TwoFactorRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = request.user
        if not (user.is_authenticated and self._required(request)):
            return None
        if not is_mfa_enabled(user, AUTHENTICATOR_TYPES):
            messages.info(
                request,
                "Two-factor sign-in is required here: set up an authenticator app to continue.",
            )
            return self._go(request, reverse("mfa_activate_totp"))
        if not any(
            record["method"] == "mfa" for record in get_authentication_records(request, user)
        ):
            query = urlencode({"next": page_to_return_to(request)})
            return self._go(request, f"{reverse('mfa_reauthenticate')}?{query}")
        return None

    @staticmethod
    def _required(request) -> bool:
        namespace = request.resolver_match.namespace
        if namespace == "admin":
            return request.user.is_staff
        return namespace == "accounts" and settings.JOINTBANK_REQUIRE_MFA

    @staticmethod
    def _go(request, url: str):
        # htmx would swap the page it is sent to into a fragment: the browser goes there.
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
