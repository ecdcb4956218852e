"""One structured log line per request: what was asked, by whom, on which account, how it went.

    {"method": "POST", "path": "accounts/<int:pk>/deposit/", "status": 200, "ms": 12.3,
     "user": 4, "account": 7}

`path` is the URL pattern when the request matched one, so that password-reset keys and other
secrets in URLs never reach the logs (and lines group by endpoint). An unmatched path (a link
cut short, an invitation link without its trailing slash) can hold a secret too: it is logged
with only the words our URL patterns use and plain numbers kept, anything else `<redacted>`
(`/accounts/invitations/5/<redacted>`). Static files are logged as asked. The account is the
`pk` of the accounts app's URLs.
"""

from __future__ import annotations

import functools
import json
import logging
import time

from django.conf import settings
from django.urls import URLResolver, get_resolver
from django.urls.resolvers import RoutePattern
from django.utils.functional import SimpleLazyObject

logger = logging.getLogger("jointbank.requests")


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        ms = (time.perf_counter() - started) * 1000
        match = request.resolver_match
        line = {
            "method": request.method,
            "path": match.route if match else _redacted(request.path),
            "status": response.status_code,
            "ms": round(ms, 1),
            "user": _user_id(request),
            "account": match.kwargs.get("pk") if match and match.namespace == "accounts" else None,
        }
        logger.info(json.dumps(line))
        return response


def _redacted(path: str) -> str:
    if path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return path
    return "/".join(
        part if not part or part in _route_words() or _is_id(part) else "<redacted>"
        for part in path.split("/")
    )


def _is_id(part: str) -> bool:
    return part.isascii() and part.isdigit() and len(part) <= 18


@functools.cache
def _route_words() -> frozenset[str]:
    """Every literal segment of the URLconf's path() routes: "accounts", "invitations", ..."""
    words: set[str] = set()

    def collect(patterns):
        for entry in patterns:
            if isinstance(entry.pattern, RoutePattern):
                route = str(entry.pattern)
                words.update(part for part in route.split("/") if part and "<" not in part)
            if isinstance(entry, URLResolver):
                collect(entry.url_patterns)

    collect(get_resolver().url_patterns)
    return frozenset(words)


def _user_id(request):
    # Only a user the request already loaded: looking one up here would cost queries on
    # requests that never needed it, and fail on /healthz while the database is down.
    # A sign-in or sign-out replaces the lazy user with the real one.
    user = getattr(request, "user", None)
    if isinstance(user, SimpleLazyObject):
        user = getattr(request, "_cached_user", None)
    return user.pk if user is not None else None
