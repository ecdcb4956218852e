"""The transaction every account lock is taken in, and the retry around it.

`Account.lock()` (accounts/models.py) is the one place that locks an account row; it opens
its transaction with `locked_transaction()`. Paths that lock call it from a method wrapped in
`retry_conflicts`.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction

from .errors import AccountBusy

# SQLSTATEs. lock_timeout and statement_timeout expired: someone else holds the account.
BUSY = {"55P03", "57014"}
# Serialization failure and deadlock: PostgreSQL rolled the whole transaction back, so running
# it again from the start is safe.
RETRYABLE = {"40001", "40P01"}
ATTEMPTS = 3

P = ParamSpec("P")
R = TypeVar("R")


def _sqlstate(error: Exception) -> str | None:
    return getattr(error.__cause__, "sqlstate", None)


def retry_conflicts(function: Callable[P, R]) -> Callable[P, R]:
    """Run a locking transaction again when PostgreSQL aborted it as a deadlock or
    serialization failure, a bounded number of times, then give up with AccountBusy.

    Only the outermost transaction is retried: inside someone else's atomic block the caller's
    earlier work was rolled back too, so the error must go up to whoever opened the transaction.
    """

    @functools.wraps(function)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.in_atomic_block:
            return function(*args, **kwargs)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return function(*args, **kwargs)
            except OperationalError as error:
                if _sqlstate(error) not in RETRYABLE:
                    raise
                if attempt == ATTEMPTS:
                    raise AccountBusy from error
                # Random back-off, so the two colliding transactions do not meet again.
                time.sleep(random.uniform(0, 0.05 * attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    return retrying


@contextmanager
def locked_transaction() -> Iterator[None]:
    """transaction.atomic with lock_timeout and statement_timeout for this transaction only:
    a request that cannot get its row lock in time fails fast with AccountBusy, having
    written nothing, instead of tying up a worker behind someone else's lock."""
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, true),"
                    " set_config('statement_timeout', %s, true)",
                    [settings.JOINTBANK_LOCK_TIMEOUT, settings.JOINTBANK_STATEMENT_TIMEOUT],
                )
            yield
    except OperationalError as error:
        if _sqlstate(error) in BUSY:
            raise AccountBusy from error
        raise


def lock_names(*names: str) -> None:
    """Transaction-level advisory locks on these names, held until the transaction ends, for
    rules that count rows beyond one account: the invitations a holder sent or an address
    received on any account, the accounts a user holds. Two transactions counting the same
    thing then count one after the other, in whatever process they run.

    Call it inside `locked_transaction` (its lock_timeout bounds the wait: AccountBusy) and
    after any account row lock. The names are taken in sorted order, so two transactions never
    wait for each other in a cycle. (A hash collision between two names only makes them wait
    for each other.)"""
    with connection.cursor() as cursor:
        for name in sorted(set(names)):
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])
