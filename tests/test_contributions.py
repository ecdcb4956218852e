"""Who put in what: the per-holder panel, its running totals and the leave confirmation."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from io import StringIO

from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.contributions import contributions, this_month
from accounts.formatting import money
from accounts.interest import Month
from accounts.models import Account, InsufficientFunds, MonthlyContribution
from tests.backdate import backdate
from tests.base import JointAccountTestCase, make_user


def panel_rows(response) -> dict[str, tuple[str, str]]:
    """{holder id: (data-net, data-net-month)} of the panel's rows."""
    panel = response.content.decode().split('id="contributions"')[1].split("</section>")[0]
    pattern = r'data-holder-id="(\d+)" data-net="([^"]+)" data-net-month="([^"]+)"'
    return {holder: (net, month) for holder, net, month in re.findall(pattern, panel)}


class ContributionsPanelTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()  # alice deposited 1000.00
        cls.account.withdraw(Decimal("84.20"), by=cls.alice)
        cls.account.deposit(Decimal("350.00"), by=cls.bob)
        cls.account.withdraw(Decimal("465.80"), by=cls.bob)
        cls.savings = Account.open("Savings", by=cls.alice)
        cls.account.transfer(cls.savings, Decimal("100.01"), by=cls.alice)

    def test_each_holder_has_a_row_with_the_net_to_the_cent(self):
        rows = panel_rows(self.client.get(self.url("detail")))
        # alice: 1000.00 − 84.20 − 100.01 (the transfer out); bob: 350.00 − 465.80.
        self.assertEqual(
            rows,
            {
                str(self.alice.pk): ("815.79", "815.79"),
                str(self.bob.pk): ("-115.80", "-115.80"),
            },
        )

    def test_a_transfer_in_counts_as_put_in_on_the_other_account(self):
        response = self.client.get(f"/accounts/{self.savings.pk}/")
        self.assertEqual(panel_rows(response), {str(self.alice.pk): ("100.01", "100.01")})

    def test_interest_is_its_own_line_without_holder_data(self):
        # Interest is for a month that has ended: the account held its 1000.00 all last month.
        month = Month.last_ended()
        Account.objects.filter(pk=self.account.pk).update(created_at=month.start)
        backdate(self.account, {self.account.entries.get(seq=1).pk: month.start})
        system = make_user("interest@example.com")
        entry = self.account.post_interest(str(month), Decimal("0.12"), by=system)
        self.assertGreater(entry.amount, 0)
        response = self.client.get(self.url("detail"))
        panel = response.content.decode().split('id="contributions"')[1].split("</section>")[0]
        interest = panel.split('<tr class="interest">')[1].split("</tr>")[0]
        self.assertEqual(interest.count(f"+{money(entry.amount)}"), 2)  # lifetime, this month
        self.assertNotIn("data-", interest)
        self.assertNotIn(str(system.pk), panel_rows(response))  # the bank is not a holder

    def test_a_former_holder_keeps_a_row(self):
        self.account.leave(by=self.bob)
        response = self.client.get(self.url("detail"))
        self.assertEqual(panel_rows(response)[str(self.bob.pk)], ("-115.80", "-115.80"))
        self.assertContains(response, 'Bob <span class="muted">(former)</span>', html=True)

    def test_last_months_moves_count_for_the_life_of_the_account_not_this_month(self):
        first = self.account.entries.get(seq=1)  # alice's 1000.00
        backdate(self.account, {first.pk: timezone.now() - timedelta(days=40)})
        rows = panel_rows(self.client.get(self.url("detail")))
        self.assertEqual(rows[str(self.alice.pk)], ("815.79", "-184.21"))
        call_command("verify_ledger", "--account", str(self.account.pk), stdout=StringIO())

    def test_it_is_one_query_over_the_running_totals(self):
        memberships = list(self.account.memberships.select_related("user__profile"))
        with CaptureQueriesContext(connection) as queries:
            result = contributions(self.account, memberships)
        self.assertEqual(len(queries), 1)
        self.assertIn("accounts_monthlycontribution", queries[0]["sql"])
        self.assertNotIn("accounts_ledgerentry", queries[0]["sql"])
        self.assertEqual(result.of(self.bob).net, Decimal("-115.80"))

    def test_the_poller_brings_the_new_totals(self):
        newest = self.account.entries.latest("pk").pk
        self.client.force_login(self.bob)
        self.account.deposit(Decimal("15.80"), by=self.bob)
        response = self.client.get(self.url("balance") + f"?after={newest}", HTTP_HX_REQUEST="true")
        self.assertContains(response, 'id="contributions" class="contributions"')
        self.assertContains(response, 'hx-swap-oob="true"')
        self.assertEqual(panel_rows(response)[str(self.bob.pk)], ("-100.00", "-100.00"))


class RunningTotalsTests(JointAccountTestCase):
    def totals(self):
        return {
            (row.holder_id, row.month): (row.paid_in, row.taken_out, row.interest)
            for row in MonthlyContribution.objects.filter(account=self.account)
        }

    def test_the_trigger_adds_every_entry_in_its_own_transaction(self):
        self.account.deposit(Decimal("0.01"), by=self.bob)
        self.account.withdraw(Decimal("0.02"), by=self.bob)
        month = this_month()
        self.assertEqual(
            self.totals(),
            {
                (self.alice.pk, month): (Decimal("1000.00"), Decimal("0.00"), Decimal("0.00")),
                (self.bob.pk, month): (Decimal("0.01"), Decimal("0.02"), Decimal("0.00")),
            },
        )

    def test_nothing_is_counted_for_an_entry_that_rolled_back_or_was_refused(self):
        before = self.totals()
        with self.assertRaises(InsufficientFunds):
            self.account.withdraw(Decimal("5000.00"), by=self.bob)
        with transaction.atomic():
            self.account.deposit(Decimal("7.00"), by=self.bob)
            transaction.set_rollback(True)
        self.assertEqual(self.totals(), before)

    def test_verify_ledger_catches_totals_that_do_not_match_the_ledger(self):
        call_command("verify_ledger", "--account", str(self.account.pk), stdout=StringIO())
        MonthlyContribution.objects.filter(account=self.account, holder=self.alice).update(
            paid_in=Decimal("999.99")
        )
        with self.assertRaisesRegex(CommandError, "contribution totals of user"):
            call_command("verify_ledger", "--account", str(self.account.pk), stdout=StringIO())


class LeaveConfirmationTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.account.deposit(Decimal("350.00"), by=cls.bob)
        cls.account.withdraw(Decimal("465.80"), by=cls.bob)

    def test_asking_to_leave_shows_the_net_before_anything_happens(self):
        self.client.force_login(self.bob)
        response = self.client.get(self.url("leave"))
        self.assertContains(response, 'id="your-net" data-net="-115.80"')
        self.assertContains(response, "Your net contribution is\n      <strong>−$115.80</strong>")
        self.assertContains(response, 'id="leave-form" method="post"')
        self.assertEqual(panel_rows(response)[str(self.alice.pk)], ("1000.00", "1000.00"))
        self.assertTrue(self.account.memberships.current().filter(user=self.bob).exists())

    def test_the_account_page_links_to_it(self):
        response = self.client.get(self.url("detail"))
        self.assertContains(
            response, f'<a id="leave-link" class="button danger" href="{self.url("leave")}">'
        )

    def test_the_last_holder_is_told_to_close_instead(self):
        self.account.leave(by=self.bob)
        response = self.client.get(self.url("leave"))
        self.assertContains(response, "You are the only holder", status_code=409)
        self.assertNotContains(response, 'id="leave-form"', status_code=409)
