from __future__ import annotations

from django.db import connection


def tamper(statement: str, params=()) -> None:
    """Rewrite the ledger as someone with the table owner's rights could: with the append-only
    trigger switched off. Only inside the calling test's transaction, which rolls it back."""
    with connection.cursor() as cursor:
        # ALTER TABLE refuses while the transaction has deferred foreign-key checks pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE accounts_ledgerentry DISABLE TRIGGER ledger_append_only")
        cursor.execute(statement, params)
