"""Give test ledgers a past: entries are written through the locked methods (now), then dated
back here. The ledger is append-only (a trigger refuses UPDATE), so this switches the trigger off
inside one transaction (DDL is transactional: no other session sees it off), moves the dates and
re-chains the account's hashes and recomputes its monthly contribution totals, so that
`verify_ledger` still finds the ledger intact."""

from __future__ import annotations

from django.db import connection, transaction

from accounts.contributions import TOTALS_FROM_LEDGER
from accounts.models import GENESIS_HASH, Account, LedgerEntry, MonthlyContribution, chain_hash


def backdate(account: Account, dates: dict) -> None:
    """`dates` maps ledger entry ids to their new created_at."""
    with transaction.atomic(), connection.cursor() as cursor:
        # ALTER TABLE refuses while the transaction has deferred foreign-key checks pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE accounts_ledgerentry DISABLE TRIGGER ledger_append_only")
        for pk, when in dates.items():
            LedgerEntry.objects.filter(pk=pk, account=account).update(created_at=when)
        previous = GENESIS_HASH
        for entry in account.entries.order_by("seq"):
            previous = chain_hash(entry, previous)
            LedgerEntry.objects.filter(pk=entry.pk).update(hash=previous)
        Account.objects.filter(pk=account.pk).update(last_hash=previous)
        MonthlyContribution.objects.filter(account=account).delete()
        ledger = {"entries": "accounts_ledgerentry", "where": "WHERE account_id = %s"}
        cursor.execute(TOTALS_FROM_LEDGER.format(**ledger), [account.pk])
        cursor.execute("ALTER TABLE accounts_ledgerentry ENABLE TRIGGER ledger_append_only")
