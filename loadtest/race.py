"""The naive read-modify-write that the app exists to avoid, next to the app's own locked path.

Not part of the app: `race_demo` shows both losing or keeping money, the benchmark serves the
naive one (loadtest/naive_wsgi.py), and the tests use it to show that their races can fail.
`race()` is race_demo's runner (many OS processes released together); the tests run
`random_changes` in their own process harness (tests/processes.py).
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connection, connections
from django.db.models import Case, F, Sum, When
from django.db.models.functions import Coalesce

from accounts.errors import InsufficientFunds
from accounts.models import Account, LedgerEntry


def naive_change(account_id: int, delta: Decimal, user_id: int) -> LedgerEntry:
    """The app's own balance arithmetic, but read-modify-write without a lock and without a
    transaction: two processes can read the same balance (and the same ledger seq)."""
    account = Account.objects.get(pk=account_id)
    kind = LedgerEntry.Kind.DEPOSIT if delta > 0 else LedgerEntry.Kind.WITHDRAWAL
    return naive_write(account, kind, abs(delta), _user(user_id))


def naive_write(account: Account, kind: str, amount: Decimal, by) -> LedgerEntry:
    """Write what `account` (as read) plus this change makes, as code unaware of concurrency
    writes it: save the balance, then create the entry, each its own statement. (The app's
    `Account._append` writes both in one statement, under the lock.)"""
    entry = account._next_entry(kind, amount, by, None)
    account.balance, account.last_seq, account.last_hash = (
        entry.balance_after,
        entry.seq,
        entry.hash,
    )
    account.version += 1
    account.save(update_fields=["balance", "version", "last_seq", "last_hash"])
    entry.save(force_insert=True)
    return entry


def locked_change(account_id: int, delta: Decimal, user_id: int) -> None:
    """The app's own path: Account.deposit / Account.withdraw."""
    account = Account(pk=account_id)  # deposit/withdraw re-read the row under the lock
    change = account.deposit if delta > 0 else account.withdraw
    change(abs(delta), by=_user(user_id))


def _user(user_id):
    from django.contrib.auth import get_user_model

    return get_user_model()(pk=user_id)


STRATEGIES = {"naive": naive_change, "locked": locked_change}


@dataclass
class RaceResult:
    strategy: str
    operations: int  # changes that reported success
    start: Decimal
    expected: Decimal  # start + the sum of every change that reported success
    actual: Decimal  # the balance column afterwards
    ledger: Decimal  # the sum of the account's ledger, signed: equals the balance if all is well
    seconds: float

    @property
    def lost(self) -> Decimal:
        return self.expected - self.actual

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0


def random_changes(strategy: str, account_id: int, user_id: int, ops: int, seed: int):
    """`ops` random deposits and withdrawals with `strategy`: the sum and the number of the
    changes that reported success (what the balance should have moved by)."""
    change = STRATEGIES[strategy]
    rng = random.Random(seed)
    total, count = Decimal("0.00"), 0
    for _ in range(ops):
        delta = Decimal(rng.randint(1, 10_000)) / 100 * rng.choice((1, -1))
        try:
            change(account_id, delta, user_id)
        except InsufficientFunds:
            continue
        except IntegrityError:
            # Naive only: two unlocked writers took the same ledger seq and the database refused
            # the second entry, but that writer's balance update had already been committed:
            # the balance did move by delta, so it belongs in what the balance should show.
            pass
        total += delta
        count += 1
    return total, count


def _worker(strategy, account_id, user_id, ops, seed, barrier, results):
    connections.close_all()  # a forked child must never reuse the parent's socket
    barrier.wait()
    outcome = random_changes(strategy, account_id, user_id, ops, seed)
    connections.close_all()
    results.put(outcome)


def race(account: Account, user, strategy: str, processes: int = 4, ops: int = 100) -> RaceResult:
    """Run `processes` OS processes doing `ops` random deposits/withdrawals each on `account`."""
    account.refresh_from_db()
    start = account.balance
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    connections.close_all()
    workers = [
        context.Process(
            target=_worker, args=(strategy, account.pk, user.pk, ops, seed, barrier, results)
        )
        for seed in range(processes)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    began = time.perf_counter()
    outcomes = [results.get(timeout=300) for _ in workers]
    seconds = time.perf_counter() - began
    for worker in workers:
        worker.join()
    account.refresh_from_db()
    return RaceResult(
        strategy=strategy,
        operations=sum(count for _, count in outcomes),
        start=start,
        expected=start + sum((total for total, _ in outcomes), Decimal("0.00")),
        actual=account.balance,
        ledger=ledger_sum(account),
        seconds=seconds,
    )


def ledger_sum(account: Account) -> Decimal:
    """The account's ledger, signed: equals the balance when nothing was lost."""
    signed = Case(
        When(kind__in=LedgerEntry.CREDITS, then=F("amount")),
        default=F("amount") * -1,
        output_field=account._meta.get_field("balance"),
    )
    return account.entries.aggregate(total=Coalesce(Sum(signed), Decimal("0.00")))["total"]


def interleave(account_id: int, user_id: int, strategy: str, say: Callable[[str], None]) -> Decimal:
    """Two clients, each on its own connection, in the order that loses an update.

    A reads the account, then B reads it, then A writes its deposit, then B writes its
    withdrawal, each computed from what it read (`naive_write`). "locked" differs only in
    reading under Account.lock(), as Account.deposit/withdraw do, so
    B's read waits until A has committed and B computes from A's result. Returns the final
    balance.
    """
    steps = {name: (threading.Event(), threading.Event()) for name in "AB"}  # (read, may write)
    errors = []
    locked = strategy == "locked"

    def client(name, delta):
        read, may_write = steps[name]
        kind = LedgerEntry.Kind.DEPOSIT if delta > 0 else LedgerEntry.Kind.WITHDRAWAL
        try:
            # The naive client has no transaction: each statement commits on its own.
            with Account(pk=account_id).lock() if locked else _unlocked(account_id) as account:
                balance = account.balance
                say(f"{name} reads the balance: {balance}")
                read.set()
                may_write.wait(timeout=30)
                sign = "+" if delta > 0 else "−"
                say(f"{name} writes {balance} {sign} {abs(delta)} = {balance + delta}")
                try:
                    naive_write(account, kind, abs(delta), _user(user_id))
                except IntegrityError:
                    # The balance UPDATE has already committed; the ledger's gapless entry
                    # numbers notice the stale read (A took the number), the balance cannot.
                    say(f"{name}'s ledger entry is refused: A took its sequence number")
                if locked:
                    say(f"{name} commits")  # said just before COMMIT: B's next line follows it
        except Exception as error:  # reported by the caller; a demo must not hang on it
            errors.append(error)
            read.set()
        finally:
            connection.close()

    a = threading.Thread(target=client, args=("A", Decimal("100.00")))
    b = threading.Thread(target=client, args=("B", Decimal("-100.00")))
    a.start()
    steps["A"][0].wait(timeout=30)
    b.start()
    if not steps["B"][0].wait(timeout=0.5):
        say(f"B waits: A holds the row lock ({_lock_waiters()} connection waiting on a lock)")
    steps["A"][1].set()  # A writes and commits
    a.join()
    steps["B"][1].set()
    b.join()
    if errors:
        raise errors[0]
    return Account.objects.values_list("balance", flat=True).get(pk=account_id)


@contextmanager
def _unlocked(account_id: int) -> Iterator[Account]:
    yield Account.objects.get(pk=account_id)


def _lock_waiters() -> int:
    """How many connections to this database wait on a lock, straight from PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]
