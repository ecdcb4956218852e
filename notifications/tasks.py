"""Notification e-mails, sent by `python manage.py worker` (procrastinate), never by a request.

A new ledger entry, an approval request made or answered, or a rule change queues
`notify_holders` for its account once its transaction has committed (so one that rolled back
sends nothing, and nothing more is written while the account is locked). The sweep every
minute catches what a lost queueing missed (the process died between COMMIT and the
queueing) and claims a killed worker left unsent.
"""

from __future__ import annotations

import contextlib
import functools

from django.db import transaction
from django.db.models import F, Q
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app
from procrastinate.exceptions import AlreadyEnqueued

from accounts.models import Account

from .delivery import deliver
from .models import Notification


@app.task(queue="notifications", retry=RetryStrategy(max_attempts=10, wait=10))
def notify_holders(account_id: int) -> None:
    deliver(account_id)


def queue_notifications(account_id: int) -> None:
    """Queue `notify_holders` unless a job for this account is already waiting: that one
    reads every entry past the cursor when it runs, this one's included."""
    with contextlib.suppress(AlreadyEnqueued):
        notify_holders.configure(queueing_lock=f"notify-{account_id}").defer(account_id=account_id)


def notify_after_commit(sender, account_id: int, **kwargs) -> None:
    """accounts.signals.account_changed, inside the change's transaction (and its account's
    lock), once per locked block: only registers the queueing for after COMMIT, which writes
    nothing now; a block rolled back (a savepoint included) drops it with its changes.
    robust: the change has committed by then, so a failure to queue is logged, not shown to
    the user (the sweep sends it)."""
    transaction.on_commit(functools.partial(queue_notifications, account_id), robust=True)


@app.periodic(cron="* * * * *", periodic_id="notifications-sweep")
@app.task(queue="notifications", queueing_lock="sweep_notifications")
def sweep_notifications(timestamp: int) -> None:
    """Deliver on every account whose ledger or version is past its cursor (every entry,
    request and rule change moves the version) or that has unsent claims."""
    behind = Account.objects.filter(
        Q(notifications_cursor__isnull=True, version__gt=0)
        | Q(last_seq__gt=F("notifications_cursor__through_seq"))
        | Q(version__gt=F("notifications_cursor__through_version"))
    ).values_list("pk", flat=True)
    unsent = Notification.objects.filter(started_at=None).values_list("account_id", flat=True)
    for account_id in sorted(set(behind) | set(unsent)):
        deliver(account_id)
