"""Many OS processes changing one balance at the same instant.

The harness behind the lost-update test, `race_demo` and the benchmarks. Every process opens
its own database connection and a barrier releases them together, so they really race.
The naive strategy (read, compute, write: no lock) is the bug this app exists to avoid;
it lives here only to show, in the same harness, that the locked strategy is what stops it.
"""

import multiprocessing
import random
import time
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connections
from django.db.models import Case, F, Sum, When
from django.db.models.functions import Coalesce

from .models import Account, InsufficientFunds, LedgerEntry


def naive_change(account_id: int, delta: Decimal, user_id: int) -> None:
    """The app's own balance arithmetic, but read-modify-write without a lock and without a
    transaction: two processes can read the same balance (and the same ledger seq)."""
    account = Account.objects.get(pk=account_id)
    kind = LedgerEntry.Kind.DEPOSIT if delta > 0 else LedgerEntry.Kind.WITHDRAWAL
    account._append(kind, abs(delta), _user(user_id), None)


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
            # the second entry, but that writer's balance update had already been committed.
            continue
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
