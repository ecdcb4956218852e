"""The other correct answer, for `make bench`: a conditional UPDATE with no explicit lock.

    UPDATE accounts_account SET balance = balance + %s, version = version + 1,
                                last_seq = last_seq + 1
     WHERE id = %s AND (balance + %s) >= 0

(Django `F()` expressions), served by the same bare WSGI shell as loadtest/bare_wsgi.py, so the
two rows differ only in how the balance changes. PostgreSQL computes the new balance from the
row as it is when the UPDATE gets it: concurrent changes queue on the row lock the UPDATE takes
itself and each starts from the last committed balance, so nothing is lost.

What it does, in one transaction: that UPDATE; a SELECT of the new balance and entry number
(Django's update() returns only a count); the ledger INSERT with `seq`, `balance_after`, kind,
amount, author and idempotency key, as the locked path writes it; COMMIT. The UPDATE's row
lock is held from the UPDATE to COMMIT, as the explicit lock is in the locked path.

What it does not do, unlike `Account.deposit` / `Account.withdraw`: no hash chain (the entry's
`hash` is a placeholder and `last_hash` stays put, so verify_ledger rejects these accounts), no
holder or closed-account check, no idempotent replay (a repeated key fails on the unique
constraint instead of answering the first result), no lock or statement timeout, no upper
balance limit. Those are what the locked path does inside its lock; this row shows what the
money arithmetic alone costs without an explicit lock.

For the benchmark only: no URL of the real app reaches it.
"""

from __future__ import annotations

from decimal import Decimal

from loadtest.bare_wsgi import make_application  # sets Django up before the models are imported

# isort: split
from django.db import transaction
from django.db.models import F

from accounts.errors import InsufficientFunds
from accounts.models import Account, LedgerEntry

NOT_CHAINED = "-" * 64


def conditional_change(account_id: int, verb: str, amount: Decimal, user_id: int, key: str):
    delta = amount if verb == "deposit" else -amount
    kind = LedgerEntry.Kind.DEPOSIT if verb == "deposit" else LedgerEntry.Kind.WITHDRAWAL
    with transaction.atomic():
        moved = (
            Account.objects.filter(pk=account_id)
            .alias(after=F("balance") + delta)
            .filter(after__gte=0)
            .update(
                balance=F("balance") + delta, version=F("version") + 1, last_seq=F("last_seq") + 1
            )
        )
        if not moved:
            raise InsufficientFunds(Account.objects.get(pk=account_id).balance)
        balance, seq = Account.objects.values_list("balance", "last_seq").get(pk=account_id)
        LedgerEntry.objects.create(
            account_id=account_id,
            seq=seq,
            kind=kind,
            amount=amount,
            balance_after=balance,
            created_by_id=user_id,
            idempotency_key=key,
            hash=NOT_CHAINED,
        )
    return balance


application = make_application(conditional_change)
