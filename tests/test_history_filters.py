"""The account page's history filters: holder, kind, dates (memo search: test_memos.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from accounts.models import Account
from tests.backdate import backdate
from tests.base import JointAccountTestCase

HX = {"HTTP_HX_REQUEST": "true"}
RESULTS = {**HX, "HTTP_HX_TARGET": "history-results"}


def shown(response) -> list[int]:
    """The ids of the entry rows the response carries, in order."""
    import re

    return [int(pk) for pk in re.findall(r'<tr id="entry-(\d+)"', response.content.decode())]


class HistoryFilterTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        # alice: deposit 1000 (base), withdraw 10; bob: deposit 20, withdraw 30.
        cls.e_alice_out = cls.account.withdraw(Decimal("10.00"), by=cls.alice)
        cls.e_bob_in = cls.account.deposit(Decimal("20.00"), by=cls.bob)
        cls.e_bob_out = cls.account.withdraw(Decimal("30.00"), by=cls.bob)
        cls.e_first = cls.account.entries.get(seq=1)

    def test_by_holder(self):
        response = self.client.get(self.url("detail", holder=self.bob.pk))
        self.assertEqual(shown(response), [self.e_bob_out.pk, self.e_bob_in.pk])

    def test_by_kind(self):
        response = self.client.get(self.url("detail", kind="withdrawal"))
        self.assertEqual(shown(response), [self.e_bob_out.pk, self.e_alice_out.pk])

    def test_holder_and_kind_together(self):
        response = self.client.get(self.url("detail", holder=self.bob.pk, kind="deposit"))
        self.assertEqual(shown(response), [self.e_bob_in.pk])

    def test_by_dates_inclusive(self):
        today = timezone.localdate()
        noon = datetime.combine(today, datetime.min.time(), tzinfo=timezone.get_current_timezone())
        backdate(
            self.account,
            {
                self.e_first.pk: noon - timedelta(days=10, hours=-12),
                self.e_alice_out.pk: noon - timedelta(days=5, hours=-12),
                self.e_bob_in.pk: noon - timedelta(days=5, hours=-13),
                self.e_bob_out.pk: noon + timedelta(hours=1),
            },
        )
        day = lambda n: (today - timedelta(days=n)).isoformat()  # noqa: E731
        cases = [
            ({"from": day(5), "to": day(5)}, [self.e_bob_in.pk, self.e_alice_out.pk]),
            ({"from": day(5)}, [self.e_bob_out.pk, self.e_bob_in.pk, self.e_alice_out.pk]),
            ({"to": day(6)}, [self.e_first.pk]),
            ({"from": day(4), "to": day(1)}, []),
            ({"from": day(-1)}, []),  # tomorrow: nothing yet
            ({"to": day(11)}, []),  # before the account had anything
        ]
        for query, expected in cases:
            with self.subTest(query=query):
                self.assertEqual(shown(self.client.get(self.url("detail", **query))), expected)

    def test_htmx_swaps_only_the_results_and_the_poller(self):
        query = {"q": "", "holder": "", "kind": "deposit", "from": "", "to": ""}
        response = self.client.get(self.url("detail"), query, **RESULTS)
        body = response.content.decode()
        self.assertTrue(body.lstrip().startswith('<div id="history-results">'))
        self.assertNotIn("<html", body)
        self.assertEqual(shown(response), [self.e_bob_in.pk, self.e_first.pk])
        # The address bar gets the filter without the empty fields the form also sent.
        self.assertEqual(response["HX-Push-Url"], self.url("detail", kind="deposit"))
        # The poller follows the filter: new rows must match it too.
        self.assertIn('id="poller"', body)
        self.assertIn("&amp;kind=deposit", body)

    def test_the_form_is_a_plain_get_form_that_htmx_enhances(self):
        page = self.client.get(self.url("detail", kind="withdrawal", q="x")).content.decode()
        form = page.split('<form id="history-filter"')[1].split(">")[0]
        self.assertIn('method="get"', form)
        self.assertIn(f'action="{self.url("detail")}"', form)
        self.assertIn('hx-push-url="true"', form)
        self.assertIn('hx-target="#history-results"', form)
        self.assertIn('<option value="withdrawal" selected>', page)
        self.assertIn('value="x"', page)

    def test_show_older_keeps_the_filter(self):
        for _ in range(30):
            self.account.deposit(Decimal("1.00"), by=self.bob)
        response = self.client.get(self.url("detail", holder=self.bob.pk, kind="deposit"))
        first_page = shown(response)
        self.assertEqual(len(first_page), 25)
        older = f"?before={first_page[-1]}&holder={self.bob.pk}&kind=deposit"
        self.assertContains(response, f'href="{self.url("history")}{older.replace("&", "&amp;")}"')

        rest = self.client.get(self.url("history") + older, **HX)
        # 31 deposits by bob: 25, then the other 6, the oldest his first deposit of 20.00.
        self.assertEqual(len(shown(rest)), 6)
        self.assertEqual(shown(rest)[-1], self.e_bob_in.pk)
        self.assertNotContains(rest, 'id="show-older"')
        # Without JavaScript the link gives the whole page, filtered from there.
        page = self.client.get(self.url("history") + older)
        self.assertEqual(shown(page), shown(rest))
        self.assertContains(page, '<option value="deposit" selected>')

    def test_bad_values_say_so_in_the_page_and_list_nothing(self):
        cases = {
            "holder=abc": "Choose a holder from the list.",
            f"holder={self.carol.pk}": "Choose a holder from the list.",
            "holder=99999999999999999999999": "Choose a holder from the list.",
            "kind=bonus": "Choose one of the kinds in the list.",
            "from=2026-02-30": "Enter a date like 2026-01-31.",
            "to=yesterday": "Enter a date like 2026-01-31.",
            "from=2026-03-01&to=2026-02-01": "The end date (2026-02-01) is before the start date",
            "q=" + "x" * 141: "Search for at most 140 characters",
            "from=%00": "Enter a date like 2026-01-31.",
        }
        for query, message in cases.items():
            for headers in ({}, RESULTS):
                with self.subTest(query=query, htmx=bool(headers)):
                    response = self.client.get(self.url("detail") + "?" + query, **headers)
                    self.assertContains(response, message, status_code=422)
                    self.assertEqual(shown(response), [])
                    self.assertContains(response, 'role="alert"', status_code=422)
            with self.subTest(query=query, page="older"):
                older = self.client.get(self.url("history") + f"?before=999999&{query}", **HX)
                self.assertEqual(older.status_code, 422)

    def test_a_former_holder_can_still_be_chosen(self):
        self.account.leave(by=self.bob)
        response = self.client.get(self.url("detail", holder=self.bob.pk))
        self.assertEqual(shown(response), [self.e_bob_out.pk, self.e_bob_in.pk])
        self.assertContains(response, f'<option value="{self.bob.pk}" selected>Bob</option>')

    def test_another_accounts_entries_never_show(self):
        other = Account.open("Other", by=self.bob)
        other.deposit(Decimal("5.00"), by=self.bob)
        response = self.client.get(self.url("detail", holder=self.bob.pk, kind="deposit"))
        self.assertEqual(shown(response), [self.e_bob_in.pk])

    def test_new_rows_that_do_not_match_the_filter_are_not_added(self):
        newest = self.account.entries.latest("pk").pk
        self.account.deposit(Decimal("5.00"), by=self.alice)
        poll = self.url("balance") + f"?after={newest}&kind=withdrawal"
        self.assertEqual(shown(self.client.get(poll, **HX)), [])
        withdrawal = self.account.withdraw(Decimal("1.00"), by=self.alice)
        self.assertEqual(shown(self.client.get(poll, **HX)), [withdrawal.pk])

    def test_a_money_form_sent_from_a_filtered_page_adds_only_matching_rows(self):
        newest = self.account.entries.latest("pk").pk
        data = {"amount": "2.00", "after": newest, "kind": "withdrawal"}
        response = self.client.post(self.url("deposit"), data, **HX)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(shown(response), [])
        response = self.client.post(self.url("withdraw"), data, **HX)
        self.assertEqual(shown(response), [self.account.entries.latest("pk").pk])

    def test_the_filter_indexes_exist(self):
        # Each filter's "newest first" page is a short range scan of its own index however
        # long the ledger (the plan on 1M rows: docs/benchmarks.md; on a test-sized table the
        # planner may pick any index, so the definitions are what is checked here).
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, "accounts_ledgerentry")
        holder, kind = constraints["ledger_account_holder"], constraints["ledger_account_kind"]
        self.assertEqual(holder["columns"], ["account_id", "created_by_id", "seq"])
        self.assertEqual(kind["columns"], ["account_id", "kind", "seq"])
        # Trigrams of UPPER(memo): what Django's case-insensitive `icontains` compares. On the
        # bare column the index would never be used (a 1.4 s page at 1M entries before this).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ledger_memo_trigram'"
            )
            [(definition,)] = cursor.fetchall()
        self.assertIn("USING gin (upper((memo)::text) gin_trgm_ops)", definition)
