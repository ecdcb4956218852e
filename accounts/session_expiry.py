"""A sign-in ends after a while without a user action, and some hours after it began.

Both times are kept in the session (seconds since the epoch). A request that finds either limit
passed signs the user out and carries on anonymously, so the view answers as to anyone signed
out (the sign-in page, with HX-Redirect for htmx; see SignInRedirectMiddleware).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.urls import Resolver404, resolve

SIGNED_IN_AT = "jointbank_signed_in_at"
LAST_ACTIVITY = "jointbank_last_activity"
# Requests the page makes on its own: the 2-second balance poll would otherwise keep a session
# open for ever in a tab left on the account page.
NOT_ACTIVITY = {"accounts:balance"}
# The last activity is written at most this often (seconds), so that a click does not always
# cost a write of the session row; the idle limit may come up to this much early.
ACTIVITY_RESOLUTION = 60


def start(sender, request, user, **kwargs) -> None:
    """On sign-in (the user_logged_in signal): both clocks start now."""
    now = time.time()
    request.session[SIGNED_IN_AT] = now
    request.session[LAST_ACTIVITY] = now


def duration(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}{'s' if seconds != size else ''}"
    return f"{seconds} seconds"


class SessionExpiryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            self._check(request)
        return self.get_response(request)

    def _check(self, request) -> None:
        session, now = request.session, time.time()
        # A session from before these limits existed starts its clocks now.
        signed_in_at = session.setdefault(SIGNED_IN_AT, now)
        last_activity = session.setdefault(LAST_ACTIVITY, now)
        idle, max_age = settings.JOINTBANK_SESSION_IDLE_TIMEOUT, settings.JOINTBANK_SESSION_MAX_AGE
        if now - last_activity > idle:
            self._sign_out(request, f"You were signed out after {duration(idle)} without activity.")
        elif now - signed_in_at > max_age:
            self._sign_out(request, f"You were signed out {duration(max_age)} after signing in.")
        elif now - last_activity > ACTIVITY_RESOLUTION and not self._is_passive(request):
            session[LAST_ACTIVITY] = now

    @staticmethod
    def _sign_out(request, why: str) -> None:
        logout(request)  # flushes the session and makes request.user anonymous
        messages.info(request, f"{why} Please sign in again.")

    @staticmethod
    def _is_passive(request) -> bool:
        try:
            return resolve(request.path_info).view_name in NOT_ACTIVITY
        except Resolver404:
            return False
