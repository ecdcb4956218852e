"""A bare WSGI app for `make bench`: `Account.deposit` / `Account.withdraw` and nothing else.

No session, authentication, CSRF, middleware, form or template: it reads the account id from the
path (`POST /accounts/<id>/deposit/` or `…/withdraw/`, as wrk sends them), `amount` and
`idempotency_key` from the body, acts as the user `BENCH_USER_ID` and answers the new balance
as plain text. So its row shows what the model method itself costs, and the gap to the real app
is the web layer. Connections are handled as Django handles them for every request
(request_started / request_finished: persistent connections, health check).

For the benchmark only: a separate WSGI module that gunicorn serves when the bench names it; no
URL of the real app reaches it, and it checks nothing the model does not check.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jointbank.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402 - after django.setup()
from django.core import signals  # noqa: E402

from accounts.errors import AccountError  # noqa: E402
from accounts.models import Account  # noqa: E402

PATH = re.compile(r"^/accounts/(\d+)/(deposit|withdraw)/$")


def locked_change(account_id: int, verb: str, amount: Decimal, user_id: int, key: str):
    """The app's own path; returns the new balance."""
    account = Account(pk=account_id)  # deposit/withdraw read the row under the lock
    by = get_user_model()(pk=user_id)
    getattr(account, verb)(amount, by=by, idempotency_key=key)
    return account.balance


def make_application(change):
    """A WSGI app that applies `change(account_id, verb, amount, user_id, key)` to each POST."""
    user_id = int(os.environ["BENCH_USER_ID"])

    def application(environ, start_response):
        signals.request_started.send(sender=None, environ=environ)
        try:
            status, text = _answer(change, environ, user_id)
        finally:
            signals.request_finished.send(sender=None)
        body = text.encode() + b"\n"
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return application


def _answer(change, environ, user_id) -> tuple[str, str]:
    if environ["REQUEST_METHOD"] == "GET":  # any GET: the bench's "is it up yet?"
        return "200 OK", "bare bench app"
    match = PATH.match(environ.get("PATH_INFO", ""))
    if environ["REQUEST_METHOD"] != "POST" or match is None:
        return "404 Not Found", "not found"
    length = int(environ.get("CONTENT_LENGTH") or 0)
    form = parse_qs(environ["wsgi.input"].read(length).decode())
    try:
        amount = Decimal(form["amount"][0])
        key = form.get("idempotency_key", [None])[0]
        balance = change(int(match[1]), match[2], amount, user_id, key)
    except (KeyError, InvalidOperation, ValueError, AccountError) as error:
        return "422 Unprocessable Content", str(error)
    return "200 OK", str(balance)


application = make_application(locked_change)
