"""One structured log line per request: what was asked, by whom, on which account, how it went.

    {"method": "POST", "path": "accounts/<int:pk>/deposit/", "status": 200, "ms": 12.3,
     "user": 4, "account": 7}

`path` is the URL pattern when the request matched one, so that password-reset keys and other
secrets in URLs never reach the logs (and lines group by endpoint); unmatched paths are logged
as requested. The account is the `pk` of the accounts app's URLs.
"""

import json
import logging
import time

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
            "path": match.route if match else request.path,
            "status": response.status_code,
            "ms": round(ms, 1),
            "user": _user_id(request),
            "account": match.kwargs.get("pk") if match and match.namespace == "accounts" else None,
        }
        logger.info(json.dumps(line))
        return response


def _user_id(request):
    # Only a user the request already loaded: looking one up here would cost queries on
    # requests that never needed it, and fail on /healthz while the database is down.
    # A sign-in or sign-out replaces the lazy user with the real one.
    user = getattr(request, "user", None)
    if isinstance(user, SimpleLazyObject):
        user = getattr(request, "_cached_user", None)
    return user.pk if user is not None else None
