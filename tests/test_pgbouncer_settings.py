"""Behind PgBouncer in transaction mode (docs/deploy.md): JOINTBANK_PGBOUNCER=1."""

from __future__ import annotations

from django.test import SimpleTestCase

from tests.production import run_in_production

DATABASE = """
from django.db import connection
print(json.dumps({
    "cursors": connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS", False),
    "prepare": connection.get_connection_params().get("prepare_threshold", "unset"),
}))
"""


class PgBouncerSettingsTests(SimpleTestCase):
    def test_it_turns_off_server_side_cursors(self):
        result = run_in_production(DATABASE, JOINTBANK_PGBOUNCER="1")
        self.assertEqual(result, {"cursors": True, "prepare": None})

    def test_a_direct_connection_keeps_them(self):
        result = run_in_production(DATABASE, JOINTBANK_PGBOUNCER="")
        self.assertEqual(result["cursors"], False)

    def test_prepared_statements_are_off_either_way(self):
        # psycopg would prepare a query after 5 runs on a connection, and a prepared statement
        # lives on one server connection; Django turns that off unless told otherwise.
        result = run_in_production(DATABASE)
        self.assertIsNone(result["prepare"])
