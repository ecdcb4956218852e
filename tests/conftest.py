from __future__ import annotations

import os
import sys

import pytest
from django.db.backends.postgresql.operations import DatabaseOperations

from jointbank.embedded_db import missing_url

# The settings refuse to start without a secret key when DEBUG is off; the suite runs the
# development configuration (plain static storage, console e-mail) like `make test` does.
os.environ.setdefault("DJANGO_DEBUG", "1")
if not os.environ.get("DATABASE_URL"):  # the settings start no database: one line, not a trace
    sys.exit(missing_url("pytest", 'make test PYTEST_ARGS="..."'))

LEDGER = "accounts_ledgerentry"


@pytest.fixture(scope="session", autouse=True)
def flush_past_the_append_only_ledger():
    """TransactionTestCase empties the tables after each test with one TRUNCATE, which the
    ledger's append-only trigger refuses, as it must everywhere else. The test flush switches
    that trigger off inside its own transaction (DDL is transactional in PostgreSQL, and ALTER
    TABLE locks the table: no other session ever sees the ledger unprotected)."""
    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        if any(LEDGER in sql for sql in sql_list):
            sql_list = [
                f"ALTER TABLE {LEDGER} DISABLE TRIGGER ledger_append_only_truncate",
                *sql_list,
                f"ALTER TABLE {LEDGER} ENABLE TRIGGER ledger_append_only_truncate",
            ]
        return original(self, sql_list)

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = original
