"""The accounts app's background jobs, run by `python manage.py worker` (procrastinate).

A task is a function under `@app.task(queue=...)`; `task.defer(**kwargs)` queues it on the
current database connection, so deferred inside a transaction it is queued only if that
transaction commits. A periodic job adds `@app.periodic(cron=..., periodic_id=...)` above
`@app.task` and receives `timestamp`, its scheduled time: however many workers run, each
scheduled time is deferred once (a unique row in `procrastinate_periodic_defers`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.management import call_command
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app


@app.periodic(cron="0 0 1 * *", periodic_id="monthly")
@app.task(queue="interest", retry=RetryStrategy(max_attempts=10, wait=60))
def post_monthly_interest(timestamp: int) -> None:
    """Interest for the month before the one `timestamp` falls in (00:00 UTC on the 1st, when
    it runs on schedule), by the `post_interest` command itself. It posts at most once per
    account and month, so a retry (an account was busy) credits only the accounts still
    missing that month, and nothing is credited twice however often this runs."""
    scheduled = datetime.fromtimestamp(timestamp, UTC)
    period = (scheduled.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    call_command("post_interest", period=period)


@app.periodic(cron="* * * * *", periodic_id="every-minute")
@app.task(queue="approvals", queueing_lock="expire_requests")
def expire_approval_requests(timestamp: int) -> None:
    """Void the approval requests past their expiry, releasing their holds, by the
    `expire_requests` command itself: each account under its lock, so a request answered at the
    same instant ends in one state, and running it twice voids nothing twice."""
    call_command("expire_requests")
