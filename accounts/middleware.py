from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import resolve_url
from django.utils.cache import patch_cache_control
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect


class SignInRedirectMiddleware:
    """Make the trip through the sign-in page end somewhere sensible, and make HTMX requests
    that cannot be answered as a fragment reload the whole page.

    - `next` is a page the user can come back to: for a POST (a form sent after the session
      expired) the page the form was on, not the POST-only URL, which would answer 405.
    - htmx follows a plain 302 inside the XHR and would swap the sign-in page into a fragment;
      HX-Redirect makes the browser go there instead.
    - A 403 or 404 to an HTMX request (a stale page: the CSRF token rotated, the user left the
      account) would otherwise change nothing visible; HX-Refresh reloads the page, which then
      shows the sign-in form or the error page.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        htmx = getattr(request, "htmx", False)
        if response.status_code == 302 and response["Location"].startswith(
            resolve_url(settings.LOGIN_URL)
        ):
            if htmx or request.method != "GET":
                response = redirect_to_login(page_to_return_to(request))
            if htmx:
                return HttpResponseClientRedirect(response["Location"])
        elif htmx and response.status_code in (403, 404):
            response["HX-Refresh"] = "true"
        return response


def page_to_return_to(request) -> str:
    """Where to come back to after a detour (sign-in, two-factor): a plain GET's own URL; for
    an htmx request or a form sent, the page it came from when that is one of ours (the
    fragment or POST-only URL itself would answer a bare fragment or 405); else its own URL."""
    if request.method == "GET" and not request.htmx:
        return request.get_full_path()
    if request.htmx:
        try:
            page = request.htmx.current_url_abs_path
        except ValueError:  # a malformed HX-Current-URL header
            page = None
    else:
        page = request.headers.get("Referer")
    if page and url_has_allowed_host_and_scheme(
        page, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(page)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.get_full_path() if request.method == "GET" else "/"


class PrivatePagesMiddleware:
    """Every answer of the accounts app shows someone's balances, history or holders, and the
    profile page someone's name and address: no cache may keep a copy, neither a shared one
    nor the browser's own (its disk, the back button after signing out). A view that sets
    Cache-Control itself keeps it: the polled balance says `no-cache, private`, so that its
    ETag is revalidated on every poll (304)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        match = request.resolver_match
        private = match and match.namespace in ("accounts", "profiles")
        if private and not response.has_header("Cache-Control"):
            patch_cache_control(response, no_store=True, private=True)
        return response
