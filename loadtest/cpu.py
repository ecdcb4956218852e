"""CPU time per HTMX deposit, in process: the web layer's cost without HTTP, wrk or gunicorn.

    python -m loadtest.cpu setup                      (a fresh `<name>_cpu` database)
    python -m loadtest.cpu measure [--tree PATH] [--account hot|spread] [-n 300]
    python -m loadtest.cpu compare OLD_TREE NEW_TREE [--rounds 4]
    python -m loadtest.cpu profile [--account hot|spread]

Every request is the one a browser's deposit form sends: `Client(enforce_csrf_checks=True)`
posts amount, memo, idempotency key and `after` (the page's newest entry) with `HX-Request`
and the CSRF header, signed in with a real session, DEBUG off (the cached template loader),
settings as gunicorn runs them (loadtest/stack.py). CPU is `time.process_time()` around
`client.post`, so other work on a shared machine does not count; `compare` alternates two
checkouts round by round against the same database and prints each one's median.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys

from . import stack

HOT_ENTRIES = 300  # the hot account's ledger: deposits spread over the chart's 90 days
SPREAD_ACCOUNTS = 1000
EMAIL, CO_HOLDER, SPREAD_EMAIL = "cpu@example.com", "co@example.com", "spread@example.com"


def database_url() -> str:
    if os.environ.get("CPU_DATABASE_URL"):  # `compare` passes it to the checkouts it runs
        return os.environ["CPU_DATABASE_URL"]
    base, _ = stack.base_database_url()
    return stack.with_database(base, base.rsplit("/", 1)[1] + "_cpu")


def setup() -> None:
    base, _ = stack.base_database_url()
    url = stack.fresh_database(base, "cpu")
    code = "from loadtest.cpu import _fixtures; _fixtures()"
    stack.manage(url, "shell", "-c", code)
    print(url)


def _fixtures() -> None:
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from accounts.models import Account
    from tests.backdate import backdate
    from tests.base import make_user

    user, co, spread_user = (
        make_user(EMAIL, "Cee"),
        make_user(CO_HOLDER, "Coe"),
        make_user(SPREAD_EMAIL, "Spread"),
    )
    hot = Account.open("hot", by=user)
    hot.memberships.create(user=co)
    Account.open("savings", by=user).deposit(Decimal("10.00"), by=user)
    entries = [hot.deposit(Decimal("1000.00"), by=user)]
    for n in range(HOT_ENTRIES):
        entries.append(hot.deposit(Decimal("3.00") + n % 7, by=co if n % 3 else user, memo="m"))
    now = timezone.now()
    backdate(
        hot, {e.pk: now - timedelta(hours=7 * (len(entries) - i)) for i, e in enumerate(entries)}
    )
    for n in range(SPREAD_ACCOUNTS):
        Account.open(f"spread {n:04}", by=spread_user).deposit(Decimal("100.00"), by=spread_user)


def measure(account: str, n: int, warmup: int = 30, page: str = "current") -> dict:
    """In this process: `n` deposits after `warmup`, CPU per request and queries of one.
    `page`: what the posting page shows: "current" (nothing happened since it was drawn),
    "behind" (one change it has not seen yet, as when another holder moved money), "none"
    (no `after` or `page_version`, as wrk's requests in `make bench`)."""
    os.environ.update(stack.app_env(database_url(), DJANGO_ALLOWED_HOSTS="testserver"))
    os.environ.pop("DJANGO_EMAIL_BACKEND", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jointbank.settings")
    import logging
    import time
    import uuid

    import django

    django.setup()
    if not (stack.ROOT / "staticfiles" / "staticfiles.json").exists():
        from django.core.management import call_command

        call_command("collectstatic", "--noinput", "-v0")
    logging.getLogger("jointbank.requests").handlers = [logging.NullHandler()]
    logging.getLogger("jointbank.requests").propagate = False
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import Account

    email = EMAIL if account == "hot" else SPREAD_EMAIL
    user = get_user_model().objects.get(email=email)
    target = Account.objects.filter(memberships__user=user).order_by("pk").first()
    if account == "hot":
        target = Account.objects.get(name="hot")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    first = client.get(f"/accounts/{target.pk}/")
    assert first.status_code == 200, first.status_code
    token = client.cookies["csrftoken"].value
    # spread: each deposit on the next of the user's 1,000 accounts, as the bench's row does
    targets = itertools.cycle(
        [target] if account == "hot" else Account.objects.filter(memberships__user=user)
    )

    def post():
        target = next(targets)
        url = f"/accounts/{target.pk}/deposit/"
        # What the page's poller holds after the previous answer: its newest entry and version.
        newest, version = Account.objects.filter(pk=target.pk).values_list("last_seq", "version")[0]
        if page == "behind":  # the newest entry came after the page was drawn
            newest, version = newest - 1, version - 1
        after = target.entries.get(seq=newest).pk
        data = {"amount": "2.50", "memo": "", "idempotency_key": str(uuid.uuid4())}
        if page != "none":
            data.update(after=str(after), page_version=str(version))
        started = time.process_time()
        response = client.post(url, data, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
        cpu = time.process_time() - started
        assert response.status_code == 200, (response.status_code, response.content[:500])
        return cpu, response

    for _ in range(warmup):
        post()
    cpu = [post()[0] * 1000 for _ in range(n)]
    with CaptureQueriesContext(connection) as queries:
        _, response = post()
    return {
        "cpu_ms": statistics.median(cpu),
        "queries": len(queries.captured_queries),
        "bytes": len(response.content),
        "sql": [q["sql"][:160] for q in queries.captured_queries],
    }


def phases(account: str, n: int, page: str) -> None:
    """Where the CPU of a deposit goes: the view's helpers wrapped in CPU clocks (nested ones
    are also counted in their callers)."""
    import functools
    import time
    from collections import defaultdict

    totals: dict = defaultdict(float)

    def clocked(owner, name, label=None):
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                totals[label or name] += time.process_time() - started

        setattr(owner, name, wrapper)

    import django

    os.environ.update(stack.app_env(database_url(), DJANGO_ALLOWED_HOSTS="testserver"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jointbank.settings")
    django.setup()
    from django.core.handlers.base import BaseHandler
    from django.test import Client

    from accounts import views
    from accounts.models import Account

    clocked(Client, "post", "client.post (everything)")
    clocked(BaseHandler, "_get_response", "view incl. process_view middleware")
    for name in dir(views):
        value = getattr(views, name)
        if (
            callable(value)
            and getattr(value, "__module__", "") in ("accounts.views",)
            and (name.startswith("_") or name in ("get_account_for_holder",))
        ):
            clocked(views, name)
    for name in ("balance_chart", "contributions", "render"):
        clocked(views, name)
    clocked(views.HistoryFilter, "__init__", "HistoryFilter()")
    clocked(views.AmountForm, "is_valid", "form.is_valid")
    clocked(views.AmountForm, "__init__", "AmountForm()")
    clocked(Account, "deposit", "Account.deposit")
    from django.db import transaction

    clocked(transaction, "on_commit", "transaction.on_commit (register)")
    import notifications.tasks

    clocked(notifications.tasks, "queue_notifications", "queue_notifications")
    from django.contrib.sessions.backends import db as session_db

    clocked(session_db.SessionStore, "load", "session load")
    from django.contrib.auth import middleware as auth_middleware

    clocked(auth_middleware, "get_user", "auth get_user")
    result = measure(account, n, page=page)
    print(
        f"{result['queries']} queries (2 of them the harness's), median {result['cpu_ms']:.2f} ms"
    )
    for label, total in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"{total / (n + 31) * 1000:8.2f} ms  {label}")


def _run(tree: str, account: str, n: int, page: str) -> dict:
    command = ["measure", "--account", account, "-n", str(n), "--page", page]
    out = subprocess.run(
        [sys.executable, "-m", "loadtest.cpu", *command],
        cwd=tree,
        capture_output=True,
        text=True,
        env={**os.environ, "CPU_DATABASE_URL": database_url()},
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(old: str, new: str, rounds: int, account: str, n: int, page: str) -> None:
    runs: dict[str, list] = {"old": [], "new": []}
    for _ in range(rounds):
        for name, tree in (("old", old), ("new", new)):
            result = _run(tree, account, n, page)
            runs[name].append(result)
            print(f"{name}: {result['cpu_ms']:.2f} ms, {result['queries']} queries", flush=True)
    for name, results in runs.items():
        cpu = sorted(r["cpu_ms"] for r in results)
        print(
            f"{name}: median of rounds {statistics.median(cpu):.2f} ms "
            f"(range {cpu[0]:.2f}–{cpu[-1]:.2f}), {results[-1]['queries']} queries, "
            f"{results[-1]['bytes']} bytes"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.cpu")
    parser.add_argument("command", choices=["setup", "measure", "compare", "profile", "phases"])
    parser.add_argument("trees", nargs="*")
    parser.add_argument("--account", choices=["hot", "spread"], default="hot")
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--page", choices=["current", "behind", "none"], default="current")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.command == "setup":
        setup()
    elif args.command == "measure":
        print(json.dumps(measure(args.account, args.n, page=args.page)))
    elif args.command == "compare":
        compare(*args.trees, args.rounds, args.account, args.n, args.page)
    elif args.command == "phases":
        phases(args.account, args.n, args.page)
    else:
        import cProfile
        import pstats
        import time

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        result = measure(args.account, args.n, page=args.page)
        profiler.disable()
        print(json.dumps({k: v for k, v in result.items() if k != "sql"}))
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(80)


if __name__ == "__main__":
    main()
