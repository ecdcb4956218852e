from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase

CHAIN = "ledger_chain_idempotency_transfers"


class ChainMigrationTests(TransactionTestCase):
    def migrate(self, targets):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)

    def test_it_numbers_and_hashes_the_entries_written_before_it(self):
        loader = MigrationExecutor(connection).loader
        # Every app's newest migration: going back to `before` also unapplies the apps that
        # depend on accounts (notifications), which the later tests need back.
        latest = loader.graph.leaf_nodes()
        chain = next(key for key in loader.disk_migrations if key[1].endswith(CHAIN))
        before = [dep for dep in loader.get_migration(*chain).dependencies if dep[0] == "accounts"]
        self.migrate(before)
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO auth_user (id, password, is_superuser, username, first_name, "
                    "last_name, email, is_staff, is_active, date_joined) "
                    "VALUES (1, 'x', false, 'alice', '', '', 'a@example.com', false, true, now())"
                )
                cursor.execute(
                    "INSERT INTO accounts_account (id, name, balance, version, created_at) "
                    "VALUES (1, 'Household', 1000.00, 3, now()), (2, 'Other', 5.00, 1, now())"
                )
                cursor.execute(
                    "INSERT INTO accounts_ledgerentry "
                    "(account_id, kind, amount, balance_after, created_by_id, created_at) VALUES "
                    "(1, 'deposit', 1200.00, 1200.00, 1, now()),"
                    "(2, 'deposit', 5.00, 5.00, 1, now()),"
                    "(1, 'withdrawal', 250.00, 950.00, 1, now()),"
                    "(1, 'deposit', 50.00, 1000.00, 1, now())"
                )
        finally:
            self.migrate(latest)

        from accounts.models import Account
        from notifications.models import Cursor

        self.assertEqual(
            list(Account.objects.get(pk=1).entries.order_by("pk").values_list("seq", flat=True)),
            [1, 2, 3],
        )
        out = StringIO()
        call_command("verify_ledger", stdout=out)
        self.assertIn("#1 Household: OK, 3 entries", out.getvalue())
        self.assertIn("#2 Other: OK, 1 entry", out.getvalue())
        # Notifications start after what existed: nobody is e-mailed about the past.
        self.assertEqual(
            dict(Cursor.objects.values_list("account_id", "through_seq")), {1: 3, 2: 1}
        )
