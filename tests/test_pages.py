from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from django.test import SimpleTestCase
from django.urls import reverse

from accounts.models import Account, LedgerEntry
from tests.base import HX, JointAccountTestCase

ROOT = Path(__file__).resolve().parent.parent


class AccountListTests(JointAccountTestCase):
    def test_it_lists_the_users_accounts_with_balances(self):
        response = self.client.get(reverse("accounts:list"))
        self.assertContains(response, "Household")
        self.assertContains(response, "$1,000.00")

    def test_it_opens_an_account_with_the_creator_as_holder(self):
        response = self.client.post(reverse("accounts:create"), {"name": "Holiday"})

        account = Account.objects.get(name="Holiday")
        self.assertRedirects(
            response, reverse("accounts:detail", args=[account.pk]), status_code=303
        )
        self.assertEqual([m.user for m in account.memberships.current()], [self.alice])
        self.assertEqual(account.balance, Decimal("0.00"))

    def test_opening_with_htmx_redirects_the_browser(self):
        response = self.client.post(reverse("accounts:create"), {"name": "Holiday"}, **HX)
        account = Account.objects.get(name="Holiday")
        self.assertEqual(response["HX-Redirect"], reverse("accounts:detail", args=[account.pk]))

    def test_a_name_with_control_characters_is_a_422(self):
        for name in ("Trip\nBcc: eve@example.com", "Tab\there", "bell\x07"):
            response = self.client.post(reverse("accounts:create"), {"name": name}, **HX)
            self.assertContains(response, "Use letters, digits", status_code=422)
        self.assertEqual(Account.objects.count(), 1)

    def test_a_blank_name_is_a_422(self):
        for headers in (HX, {}):
            response = self.client.post(reverse("accounts:create"), {"name": "  "}, **headers)
            self.assertContains(response, "This field is required", status_code=422)
        self.assertEqual(Account.objects.count(), 1)


class AccountPageTests(JointAccountTestCase):
    def test_it_shows_name_holders_balance_forms_and_history(self):
        response = self.client.get(self.url("detail"))

        self.assertEqual(self.data_balance(response), "1000.00")
        self.assertContains(response, "<h1>Household</h1>", html=True)
        self.assertContains(response, "bob@example.com")
        self.assertContains(response, 'id="deposit-form"')
        self.assertContains(response, 'id="withdraw-form"')
        # deposit, withdraw, rules, invite and notification settings
        self.assertContains(response, "novalidate", count=5)
        self.assertContains(response, 'id="entry-')
        self.assertNotContains(response, "{#")  # no template comment printed as text

    def test_htmx_swaps_422_responses_and_is_served_from_our_static_files(self):
        response = self.client.get(self.url("detail"))
        self.assertContains(response, '{"code": "422", "swap": true}')
        self.assertContains(response, "/static/django_htmx/htmx-2.min.js")
        self.assertNotContains(response, "unpkg")
        self.assertNotContains(response, "cdn")


class HistoryTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        for cents in range(1, 40):  # 40 entries with the opening deposit
            cls.account.deposit(Decimal(cents) / 100, by=cls.bob)

    def ids(self, response):
        body = response.content.decode()
        return [int(part.split('"')[0]) for part in body.split('id="entry-')[1:]]

    def test_it_shows_the_newest_25_first(self):
        newest = list(self.account.entries.order_by("-pk").values_list("pk", flat=True))
        self.assertEqual(self.ids(self.client.get(self.url("detail"))), newest[:25])

    def test_show_older_continues_before_the_last_row(self):
        newest = list(self.account.entries.order_by("-pk").values_list("pk", flat=True))
        page = self.client.get(self.url("detail")).content.decode()
        self.assertIn(f"?before={newest[24]}", page)

        older = self.client.get(self.url("history", before=newest[24]), **HX)
        self.assertEqual(self.ids(older), newest[25:])
        self.assertNotContains(older, "Show older")
        self.assertNotContains(older, "<html")

    def test_show_older_works_without_javascript(self):
        newest = list(self.account.entries.order_by("-pk").values_list("pk", flat=True))
        response = self.client.get(self.url("history", before=newest[24]))
        self.assertContains(response, "<html")
        self.assertEqual(self.ids(response), newest[25:])

    def test_a_bad_cursor_is_a_400(self):
        for before in ("", "abc", "-1", "1e3", "٣"):
            with self.subTest(before=before):
                self.assertEqual(
                    self.client.get(self.url("history", before=before)).status_code, 400
                )

    def test_the_history_query_has_its_index(self):
        # "account = X AND id < Y ORDER BY id DESC LIMIT 26" is a short range scan of an
        # (account, id DESC) index, however many millions of rows the ledger holds. (The plan
        # itself is not asserted: on a test-sized table the planner may pick any index.)
        from django.db import connection

        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, "accounts_ledgerentry")
        index = constraints["ledger_account_newest"]
        self.assertTrue(index["index"])
        self.assertEqual(index["columns"], ["account_id", "id"])
        self.assertEqual(index["orders"], ["ASC", "DESC"])


class BalancePollingTests(JointAccountTestCase):
    def poll(self, etag=None, after=None):
        headers = {"HTTP_IF_NONE_MATCH": etag} if etag else {}
        query = {"after": after} if after is not None else {}
        return self.client.get(self.url("balance", **query), **HX, **headers)

    def test_it_answers_304_while_nothing_changed(self):
        first = self.poll()
        self.assertEqual(first.status_code, 200)
        self.assertEqual(self.data_balance(first), "1000.00")

        again = self.poll(etag=first["ETag"])
        self.assertEqual(again.status_code, 304)
        self.assertEqual(again.content, b"")

    def test_a_co_holders_change_makes_it_answer_200_with_the_new_balance_and_rows(self):
        first = self.poll()
        newest = self.account.entries.latest("pk").pk
        self.account.deposit(Decimal("5.00"), by=self.bob)

        response = self.poll(etag=first["ETag"], after=newest)
        self.assertEqual(response.status_code, 200)
        self.assertNotEqual(response["ETag"], first["ETag"])
        self.assertEqual(self.data_balance(response), "1005.00")
        self.assertContains(response, "<td>Bob</td>", html=True)
        self.assertContains(response, 'hx-swap-oob="afterbegin:#history-rows"')
        self.assertContains(response, f"?after={newest + 1}")

    def test_it_is_cheap(self):
        etag = self.poll()["ETag"]
        with self.assertNumQueries(3):  # session, user, account
            self.assertEqual(self.poll(etag=etag).status_code, 304)

    def test_the_money_forms_send_the_newest_row_they_show(self):
        # Bob deposits while Alice's page is open; Alice's own deposit then brings both rows.
        page = self.client.get(self.url("detail")).content.decode()
        newest = self.account.entries.latest("pk").pk
        self.assertIn(f'name="after" value="{newest}"', page)
        self.account.deposit(Decimal("7.00"), by=self.bob)

        response = self.client.post(
            self.url("deposit"), {"amount": "3.00", "after": str(newest)}, **HX
        )
        rows = response.content.decode().count('<tr id="entry-')
        self.assertEqual(rows, 2)
        self.assertEqual(LedgerEntry.objects.filter(account=self.account).count(), 3)

    def test_too_many_changes_for_one_page_reload_the_page(self):
        newest = self.account.entries.latest("pk").pk
        for _ in range(26):
            self.account.deposit(Decimal("1.00"), by=self.bob)
        response = self.poll(after=newest)
        self.assertEqual(response["HX-Refresh"], "true")


class TemplateCommentTests(SimpleTestCase):
    def test_no_short_comment_spans_lines(self):
        """Django's {# … #} ends on its line: one spanning lines is printed on the page as
        text (the account page showed one). Longer notes use {% comment %}."""
        for template in sorted((ROOT / "templates").rglob("*.*")):
            for number, line in enumerate(template.read_text().splitlines(), start=1):
                with self.subTest(template=str(template.relative_to(ROOT)), line=number):
                    self.assertNotRegex(line, r"\{#(?!.*#\})")
