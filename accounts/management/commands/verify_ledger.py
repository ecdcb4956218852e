from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Sum

from accounts.contributions import ZERO, this_month
from accounts.models import GENESIS_HASH, Account, LedgerEntry, MonthlyContribution, chain_hash

CHUNK = 2000
Kind = LedgerEntry.Kind
# Which total each kind adds to: paid_in, taken_out, interest.
COLUMNS = {
    Kind.DEPOSIT: 0,
    Kind.TRANSFER_IN: 0,
    Kind.WITHDRAWAL: 1,
    Kind.TRANSFER_OUT: 1,
    Kind.INTEREST: 2,
}


class Command(BaseCommand):
    help = (
        "Check the ledger of every account (or --account ID): the balance equals the sum of "
        "the signed amounts, each balance_after, seq without gaps, the hash chain, the "
        "pairing of transfers, the per-holder monthly totals, and that the amount held equals "
        "the pending requests' holds. Exits 1 and names the first bad entry when anything is "
        "off."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", type=int, metavar="ID", help="check only this account")

    def handle(self, *args, account=None, **options):
        accounts = Account.objects.order_by("pk")
        if account is not None:
            accounts = accounts.filter(pk=account)
            if not accounts.exists():
                raise CommandError(f"There is no account with id {account}.")
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if outermost:
                # One snapshot for every account: balances and entries as of the same instant,
                # while the app goes on writing.
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            failures = [bad for bad in map(self.verify, accounts) if bad]
        if failures:
            raise CommandError(
                f"{len(failures)} account(s) failed verification. First: {failures[0]}"
            )

    def verify(self, account) -> str | None:
        """Print one line for the account; return the problem, if any."""
        count, problem = check_ledger(account)
        label = f"#{account.pk} {account.name}"
        if problem:
            self.stdout.write(self.style.ERROR(f"{label}: FAILED: {problem}"))
            return f"{label}: {problem}"
        self.stdout.write(
            f"{label}: OK, {count} {'entry' if count == 1 else 'entries'}, "
            f"balance {account.balance}, "
            f"chain head {account.last_hash}"
        )
        return None


def check_ledger(account) -> tuple[int, str | None]:
    """(entries checked, the first problem found or None)."""
    entries = account.entries.select_related("pair", "paired_in").order_by("seq")
    seq, balance, previous = 0, Decimal("0.00"), GENESIS_HASH
    # (user, month): paid in, taken out, interest, as the ledger adds them up.
    totals: defaultdict[tuple[int, date], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for entry in entries.iterator(chunk_size=CHUNK):
        seq += 1
        where = f"entry id {entry.pk} (seq {entry.seq})"
        if entry.seq != seq:
            return seq, f"{where}: expected seq {seq}, so entries are missing"
        balance += entry.signed_amount
        if entry.balance_after != balance:
            return seq, (
                f"{where}: balance_after is {entry.balance_after}, but the entries up to it "
                f"add up to {balance}"
            )
        if entry.hash != chain_hash(entry, previous):
            return seq, f"{where}: the hash does not match the entry's fields and the chain"
        if problem := _transfer_problem(entry):
            return seq, f"{where}: {problem}"
        previous = entry.hash
        column = COLUMNS.get(entry.kind)
        if column is not None:
            totals[entry.created_by_id, this_month(entry.created_at)][column] += entry.amount
    if account.balance != balance:
        return seq, f"the balance is {account.balance}, but the entries add up to {balance}"
    if (account.last_seq, account.last_hash) != (seq, previous):
        return seq, (
            f"the account's chain head (seq {account.last_seq}) is not its newest entry (seq {seq})"
        )
    return seq, _totals_problem(account, totals) or _holds_problem(account)


def _holds_problem(account) -> str | None:
    """What the account holds for approval requests must be what its pending ones hold."""
    pending = account.approval_requests.pending()
    holds = pending.aggregate(total=Sum("amount"))["total"] or Decimal("0.00")
    if account.held != holds:
        return (
            f"the account holds {account.held} for pending requests, but their amounts add up "
            f"to {holds}"
        )
    return None


def _totals_problem(account, totals) -> str | None:
    """The running totals of the "who put in what" panel must be the ledger's own sums."""
    stored = {
        (row.holder_id, row.month): [row.paid_in, row.taken_out, row.interest]
        for row in MonthlyContribution.objects.filter(account=account)
    }
    for key in sorted(set(stored) | set(totals)):
        if stored.get(key, [ZERO] * 3) != totals.get(key, [ZERO] * 3):
            user, month = key
            return (
                f"the contribution totals of user {user} for {month:%Y-%m} are "
                f"{stored.get(key)}, but the entries add up to {totals.get(key)}"
            )
    return None


def _transfer_problem(entry) -> str | None:
    """A transfer's two entries must name each other: same amount, opposite accounts."""
    if entry.kind == Kind.TRANSFER_OUT:
        other = getattr(entry, "paired_in", None)
        expected_kind = Kind.TRANSFER_IN
    elif entry.kind == Kind.TRANSFER_IN:
        other = entry.pair
        expected_kind = Kind.TRANSFER_OUT
    else:
        if entry.pair_id or entry.counterparty_id:
            return f"a {entry.kind} names a transfer counterparty"
        return None
    if other is None:
        return "the transfer has no other half"
    if (other.kind, other.amount, other.account_id, other.counterparty_id) != (
        expected_kind,
        entry.amount,
        entry.counterparty_id,
        entry.account_id,
    ):
        return f"the transfer's other half (entry id {other.pk}) does not match it"
    return None
