"""Many OS processes changing one balance at the same instant.

The harness behind the lost-update test, `race_demo` and the benchmarks. Every process opens
its own database connection and a barrier releases them together, so they really race.
The naive strategy (read, compute, write: no lock) is the bug this app exists to avoid;
it lives here only to show, in the same harness, that the locked strategy is what stops it.
"""

import contextlib
import multiprocessing
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Case, F, Sum, When
from django.db.models.functions import Coalesce

from .errors import InsufficientFunds
from .models import Account, LedgerEntry


def naive_change(account_id: int, delta: Decimal, user_id: int) -> LedgerEntry:
    """The app's own balance arithmetic, but read-modify-write without a lock and without a
    transaction: two processes can read the same balance (and the same ledger seq)."""
    account = Account.objects.get(pk=account_id)
    kind = LedgerEntry.Kind.DEPOSIT if delta > 0 else LedgerEntry.Kind.WITHDRAWAL
    return account._append(kind, abs(delta), _user(user_id), None)


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


def _worker(strategy, account_id, user_id, ops, seed, barrier, results):
    connections.close_all()  # a forked child must never reuse the parent's socket
    change = STRATEGIES[strategy]
    rng = random.Random(seed)
    total, count = Decimal("0.00"), 0
    barrier.wait()
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
    connections.close_all()
    results.put((total, count))


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
        ledger=_ledger_sum(account),
        seconds=seconds,
    )


def _ledger_sum(account) -> Decimal:
    signed = Case(
        When(kind__in=LedgerEntry.CREDITS, then=F("amount")),
        default=F("amount") * -1,
        output_field=account._meta.get_field("balance"),
    )
    return account.entries.aggregate(total=Coalesce(Sum(signed), Decimal("0.00")))["total"]


def interleave(account_id: int, user_id: int, strategy: str, say: Callable[[str], None]) -> Decimal:
    """Two clients, each on its own connection, in the order that loses an update.

    A reads the account, then B reads it, then A writes its deposit, then B writes its
    withdrawal, each computed from what it read (Account._append). "locked" differs only in
    reading with SELECT … FOR UPDATE inside a transaction, as Account.deposit/withdraw do, so
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
            with transaction.atomic() if locked else contextlib.nullcontext():
                accounts = Account.objects.filter(pk=account_id)
                if locked:
                    accounts = accounts.select_for_update(no_key=True)
                account = accounts.get()
                balance = account.balance
                say(f"{name} reads the balance: {balance}")
                read.set()
                may_write.wait(timeout=30)
                sign = "+" if delta > 0 else "−"
                say(f"{name} writes {balance} {sign} {abs(delta)} = {balance + delta}")
                try:
                    account._append(kind, abs(delta), _user(user_id), None)
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


def _lock_waiters() -> int:
    """How many connections to this database wait on a lock, straight from PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]
