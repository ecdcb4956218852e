"""The answer to an HTMX money form when the page was current: the page's poller sends the
account version it shows (`page_version`), and when the entry just written is the only change
since then, the answer takes the new row from that entry and, while nothing is held, neither
reads nor redraws the requests and the rules (accounts/views.py `_the_only_change`). Anything
else in between, and the answer brings everything, as the poll would."""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.approvals import ApprovalRequest
from accounts.models import Account
from tests.backdate import backdate
from tests.base import HX, JointAccountTestCase, make_staff


class CurrentPageTests(JointAccountTestCase):
    def page_state(self, **query) -> dict:
        """What the page's poller sends with a money form: `after`, `page_version`, filters."""
        page = self.client.get(self.url("detail", **query)).content.decode()
        poller = re.search(r'<div id="poller".*?</div>', page, re.S).group(0)
        return dict(re.findall(r'<input type="hidden"[^>]* name="(\w+)" value="([^"]*)"', poller))

    def deposit(self, state: dict, amount="25.00", **fields):
        data = {"amount": amount, "idempotency_key": str(uuid.uuid4()), **state, **fields}
        with CaptureQueriesContext(connection) as queries:
            response = self.client.post(self.url("deposit"), data, **HX)
        self.assertEqual(response.status_code, 200)
        return response, [query["sql"] for query in queries.captured_queries]

    def row(self, response, entry_pk: int) -> str:
        match = re.search(rf'<tr id="entry-{entry_pk}".*?</tr>', response.content.decode(), re.S)
        self.assertIsNotNone(match, f"no row for entry {entry_pk}")
        return match.group(0)

    def assert_requests_redrawn(self, response, redrawn: bool):
        body = response.content.decode()
        self.assertEqual('id="requests"' in body, redrawn)
        self.assertEqual('id="rules-now"' in body, redrawn)

    def test_it_is_taken_when_nothing_else_changed(self):
        response, statements = self.deposit(self.page_state(), memo="rent")

        self.assert_requests_redrawn(response, False)
        self.assertFalse([sql for sql in statements if 'FROM "accounts_approvalrequest"' in sql])
        # The new row comes from the entry written, not from reading the ledger back.
        self.assertFalse([sql for sql in statements if sql.startswith('SELECT "accounts_ledger')])
        entry = self.account.entries.latest("seq")
        self.assertIn("rent", self.row(response, entry.pk))
        self.assertEqual(self.data_balance(response), "1025.00")
        self.assertEqual(self.data_attr(response, "available", "data-available"), "1025.00")
        self.assertContains(response, 'id="balance-chart"')
        self.assertContains(response, 'id="contributions"')
        # The page is current again: its next deposit takes the same path.
        state = dict(re.findall(r'name="(after|page_version)" value="(\d+)"', response.text))
        self.assertEqual(state, {"after": str(entry.pk), "page_version": str(entry.version)})
        response, _ = self.deposit(state)
        self.assert_requests_redrawn(response, False)

    def test_its_row_is_the_one_the_full_answer_draws(self):
        state = self.page_state()
        fast, _ = self.deposit(state, memo="for the <b>plumber</b>")
        entry = self.account.entries.latest("seq")
        # The poll of a page that did not see it reads the row back from the ledger.
        poll = self.client.get(self.url("balance", after=state["after"]), **HX)
        self.assertEqual(self.row(fast, entry.pk), self.row(poll, entry.pk))
        self.assertIn("Alice", self.row(fast, entry.pk))

    def test_a_rules_change_since_the_page_is_brought(self):
        state = self.page_state()
        self.account.set_rules(Decimal("50.00"), None, by=self.bob)  # nothing held

        response, _ = self.deposit(state)

        self.assert_requests_redrawn(response, True)
        self.assertContains(response, "Approval threshold: <strong>$50.00</strong>")

    def test_another_change_since_the_page_brings_the_requests_and_its_rows(self):
        state = self.page_state()
        self.account.set_rules(Decimal("50.00"), None, by=self.bob)  # tightening: at once
        result = self.account.withdraw(Decimal("60.00"), by=self.bob)
        self.assertIsInstance(result, ApprovalRequest)

        response, _ = self.deposit(state)

        self.assert_requests_redrawn(response, True)
        self.assertContains(response, f'data-request-id="{result.pk}" data-state="pending"')
        self.assertContains(response, "$50.00")  # the rules as they are now
        self.assertEqual(self.data_attr(response, "available", "data-available"), "965.00")

    def test_a_co_holders_entry_since_the_page_is_brought_too(self):
        state = self.page_state()
        bobs = self.account.deposit(Decimal("7.00"), by=self.bob)

        response, _ = self.deposit(state)

        self.assertIn("Bob", self.row(response, bobs.pk))
        self.assertIn("Alice", self.row(response, self.account.entries.latest("seq").pk))

    def test_with_money_held_the_requests_are_read_for_the_available_balance(self):
        Account.objects.filter(pk=self.account.pk).update(approval_threshold=Decimal("100.00"))
        request = self.account.withdraw(Decimal("150.00"), by=self.alice)
        # It expired, and nothing has voided it yet: it holds nothing any more.
        ApprovalRequest.objects.filter(pk=request.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        response, _ = self.deposit(self.page_state())

        self.assertEqual(self.data_attr(response, "available", "data-available"), "1025.00")
        self.assertContains(response, f'data-request-id="{request.pk}" data-state="expired"')

    def test_a_replay_answers_with_everything(self):
        state = self.page_state()
        key = str(uuid.uuid4())
        self.deposit(state, idempotency_key=key)
        response, _ = self.deposit(state, idempotency_key=key)

        self.assertEqual(response["Idempotent-Replayed"], "true")
        self.assert_requests_redrawn(response, True)

    def test_a_filtered_page_gets_only_the_rows_its_filters_match(self):
        state = self.page_state(q="rent")
        self.assertEqual(state["q"], "rent")
        response, _ = self.deposit(state, memo="groceries")
        entry = self.account.entries.latest("seq")
        self.assertNotIn(f'id="entry-{entry.pk}"', response.content.decode())
        self.assert_requests_redrawn(response, False)  # still current: nothing else changed

        response, _ = self.deposit(self.page_state(q="rent"), memo="rent for May")
        self.assertIn("rent for May", self.row(response, self.account.entries.latest("seq").pk))


class NewRowsTests(JointAccountTestCase):
    def test_the_answers_name_everyone_as_the_page_does(self):
        """The answers read new rows without their people and name them from the "who put in
        what" panel's holders (`_name_people`); the page joins them. Both must draw the same
        rows: an approved withdrawal, a former holder's deposit, a staff correction, and
        interest posted by someone who is in no panel row."""
        before = self.account.entries.latest("seq").pk
        # Interest for last month: the account has been open, with its money, since before it.
        month_ended = timezone.now().replace(day=1) - timedelta(days=1)
        opening = self.account.entries.get(seq=1)
        backdate(self.account, {opening.pk: month_ended.replace(day=1) - timedelta(days=5)})
        Account.objects.filter(pk=self.account.pk).update(created_at=month_ended.replace(day=1))
        self.account.refresh_from_db()
        interest = self.account.post_interest(
            f"{month_ended:%Y-%m}", Decimal("0.02"), by=make_staff("bank@example.com")
        )
        self.assertIsNotNone(interest)
        Account.objects.filter(pk=self.account.pk).update(approval_threshold=Decimal("100.00"))
        self.account.refresh_from_db()
        request = self.account.withdraw(Decimal("150.00"), by=self.alice)
        approved = self.account.approve(request, by=self.bob).entry
        self.account.memberships.create(user=self.carol)
        carols = self.account.deposit(Decimal("3.00"), by=self.carol)
        self.account.leave(by=self.carol)
        staff = make_staff("root@example.com")
        correction = self.account.deposit(Decimal("1.00"), by=staff, by_staff=True)

        page = self.client.get(self.url("detail"))
        with CaptureQueriesContext(connection) as queries:
            poll = self.client.get(self.url("balance", after=before), **HX)
        # No query per row: the signed-in user, the panel's staff member (not a holder), and
        # the one person in no panel row.
        users = [q["sql"] for q in queries.captured_queries if 'FROM "auth_user"' in q["sql"]]
        self.assertEqual(len(users), 3, users)
        profiles = 'SELECT "profiles_profile"'  # a name looked up on its own
        self.assertFalse([q for q in queries.captured_queries if q["sql"].startswith(profiles)])

        rows = CurrentPageTests.row
        for entry, name in [
            (interest, "bank"),
            (approved, "approved by Bob"),
            (carols, "Carol"),
            (correction, "root"),
        ]:
            with self.subTest(entry=entry.kind, name=name):
                self.assertIn(name, rows(self, page, entry.pk))
                self.assertEqual(rows(self, poll, entry.pk), rows(self, page, entry.pk))


class FilterAnswerTests(JointAccountTestCase):
    """The history filter's answer redraws only the history (and the poller following the
    filters), not the balance, the requests or the rules: it must not mark the page as
    current, or a co-holder's change made since the page's last poll would never show."""

    RESULTS = {**HX, "HTTP_HX_TARGET": "history-results"}
    deposit = CurrentPageTests.deposit
    assert_requests_redrawn = CurrentPageTests.assert_requests_redrawn

    def poller(self, response) -> tuple[str, dict]:
        """The ETag the poller sends from now on, and its inputs."""
        body = response.content.decode()
        poller = re.search(r'<div id="poller".*?</div>', body, re.S).group(0)
        headers = json.loads(html.unescape(re.search(r"hx-headers='([^']*)'", poller).group(1)))
        inputs = re.findall(r'<input type="hidden"[^>]* name="(\w+)" value="([^"]*)"', poller)
        return headers["If-None-Match"], dict(inputs)

    def test_a_co_holders_change_before_the_filter_still_shows(self):
        self.account.set_rules(None, Decimal("500.00"), by=self.bob)  # tightening: at once
        page = self.client.get(self.url("detail"))
        etag, _ = self.poller(page)
        self.assertEqual(
            self.client.get(self.url("balance"), HTTP_IF_NONE_MATCH=etag).status_code, 304
        )
        # Bob deposits, and asks to raise the daily limit (which holds nothing), before the
        # page's next poll; then Alice types in the memo filter.
        bobs = self.account.deposit(Decimal("7.00"), by=self.bob, memo="from bob")
        waiting = self.account.set_rules(None, Decimal("1000.00"), by=self.bob)
        self.assertIsInstance(waiting, ApprovalRequest)
        query = {"q": "bob", "holder": "", "kind": "", "from": "", "to": ""}
        filtered = self.client.get(self.url("detail"), query, **self.RESULTS)
        self.assertEqual(filtered.status_code, 200)
        etag, state = self.poller(filtered)
        self.assertNotIn("page_version", state)
        self.assertEqual(state["after"], str(bobs.pk))  # the filtered history shows bob's

        # The next poll brings the new balance, the waiting request and the rules.
        poll = self.client.get(
            self.url("balance") + f"?after={state['after']}&q=bob", HTTP_IF_NONE_MATCH=etag, **HX
        )
        self.assertEqual(poll.status_code, 200)
        self.assertEqual(self.data_balance(poll), "1007.00")
        self.assert_requests_redrawn(poll, True)
        self.assertContains(poll, f'data-request-id="{waiting.pk}" data-state="pending"')
        # ...and marks the page current again.
        etag, polled = self.poller(poll)
        self.assertEqual(
            polled["page_version"], str(Account.objects.get(pk=self.account.pk).version)
        )
        self.assertEqual(
            self.client.get(self.url("balance"), HTTP_IF_NONE_MATCH=etag).status_code, 304
        )

        # A deposit sent from the filtered page before that poll brings them all too.
        response, _ = self.deposit(state, memo="bob's share")
        self.assertEqual(self.data_balance(response), "1032.00")
        self.assert_requests_redrawn(response, True)
        self.assertContains(response, f'data-request-id="{waiting.pk}" data-state="pending"')
