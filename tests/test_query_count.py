"""The hot path's database work, pinned: a deposit or withdrawal that sends one more query, or
holds the account's row lock across one more statement, fails here instead of only showing up
as a slower `make bench` (docs/benchmarks.md has what each of them costs).

Counted are the statements Django sends through its cursor. Inside TestCase the money
transaction is a savepoint, so SAVEPOINT and RELEASE stand where production sends BEGIN and
COMMIT; production also sends the connection health check (`SELECT 1`), which the test client
does not.
"""

from __future__ import annotations

import uuid

from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from tests.base import JointAccountTestCase

HX = {"HTTP_HX_REQUEST": "true"}

# session, user, account (holder check), SAVEPOINT, transaction timeouts, row lock, holder
# check and idempotency-key lookups (the ledger's and the approval requests') on the locked row
# (one statement), UPDATE of the balance and chain head with INSERT of the entry (one
# statement), RELEASE, after COMMIT the queueing of the notification job (README,
# Notifications), the balance chart, the "who put in what" panel: one aggregate over the
# running totals (not over the ledger) and the holders; then, from a page that has not seen
# everything up to the account's version (here: none sent), whether any approval request is
# listed (the answer redraws them with the balance, as the poll does: both move the page to
# the account's new version) and the new history rows
HTMX_CHANGE = 15
# From a page that showed the account's version until this change (tests/test_money_answer.py):
# neither the requests (nothing held) nor the new rows (the entry just written) are read.
HTMX_CHANGE_FROM_A_CURRENT_PAGE = 13
# What runs while the row lock is held: the checks, the write, then COMMIT (here RELEASE).
UNDER_THE_LOCK = 3


class MoneyPathQueryCountTests(JointAccountTestCase):
    def change(self, verb: str, **page):
        data = {"amount": "5.00", "idempotency_key": str(uuid.uuid4()), "after": "0", **page}
        # The test never commits: run what production runs after COMMIT, and count it.
        with (
            CaptureQueriesContext(connection) as queries,
            self.captureOnCommitCallbacks(execute=True),
        ):
            response = self.client.post(self.url(verb), data, **HX)
        self.assertEqual(response.status_code, 200)
        return [query["sql"] for query in queries.captured_queries]

    def assert_pinned(self, statements, count=HTMX_CHANGE):
        listing = "\n".join(statements)
        self.assertEqual(len(statements), count, listing)
        lock = next(i for i, sql in enumerate(statements) if "FOR NO KEY UPDATE" in sql)
        release = next(i for i, sql in enumerate(statements) if sql.startswith("RELEASE"))
        self.assertEqual(release - lock, UNDER_THE_LOCK, listing)

    def test_it_pins_the_queries_of_an_htmx_deposit(self):
        self.assert_pinned(self.change("deposit"))

    def test_it_pins_the_queries_of_an_htmx_withdrawal(self):
        self.assert_pinned(self.change("withdraw"))

    def test_it_pins_the_queries_of_an_htmx_deposit_from_a_current_page(self):
        page = {"after": str(self.account.entries.latest("seq").pk)}
        page["page_version"] = str(Account.objects.get(pk=self.account.pk).version)
        statements = self.change("deposit", **page)
        self.assert_pinned(statements, HTMX_CHANGE_FROM_A_CURRENT_PAGE)
