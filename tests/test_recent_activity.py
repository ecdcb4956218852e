"""The accounts page's "Recent activity": other people's moves and invitations, newest first."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone

from accounts.approvals import ApprovalRequest
from accounts.formatting import money
from accounts.interest import Month
from accounts.models import Account
from tests.backdate import backdate
from tests.base import JointAccountTestCase, make_user


def items(response) -> list[str]:
    page = response.content.decode().split('id="activity-label"')[1].split("</section>")[0]
    texts = re.findall(r'<li class="activity-\w+">(.*?)</li>', page, re.S)
    return [html.unescape(" ".join(re.sub(r"<[^>]+>", " ", text).split())) for text in texts]


class RecentActivityTests(JointAccountTestCase):
    def test_moves_by_others_newest_first_and_never_your_own(self):
        self.account.deposit(Decimal("20.00"), by=self.bob)
        self.account.withdraw(Decimal("5.50"), by=self.alice)
        self.account.withdraw(Decimal("7.25"), by=self.bob)
        listing = items(self.client.get(reverse("accounts:list")))
        self.assertEqual(len(listing), 2)
        self.assertRegex(listing[0], r"^\w+ \d+, \d\d:\d\d Bob withdrew from Household −\$7\.25$")
        self.assertRegex(listing[1], r"Bob deposited in Household \+\$20\.00$")

        self.client.force_login(self.bob)
        listing = items(self.client.get(reverse("accounts:list")))
        self.assertEqual(len(listing), 2)  # alice's first deposit, and her withdrawal
        self.assertIn("Alice withdrew from Household −$5.50", listing[0])
        self.assertIn("Alice deposited in Household +$1,000.00", listing[1])

    def test_transfers_and_interest(self):
        savings = Account.open("Savings", by=self.bob)
        savings.add_holder(self.alice)
        self.account.transfer(savings, Decimal("12.00"), by=self.bob)
        bank = make_user("bank@example.com", "The bank")
        month = Month.last_ended()  # interest is for a month that has ended
        Account.objects.filter(pk=self.account.pk).update(created_at=month.start)
        backdate(self.account, {self.account.entries.get(seq=1).pk: month.start})
        interest = self.account.post_interest(str(month), Decimal("0.12"), by=bank)
        listing = items(self.client.get(reverse("accounts:list")))
        self.assertIn(f"Interest credited to Household +{money(interest.amount)}", listing[0])
        self.assertIn("Bob transferred in to Savings from Household +$12.00", listing[1])
        self.assertIn("Bob transferred out from Household to Savings −$12.00", listing[2])

    def test_accounts_you_left_or_never_held_stay_silent(self):
        other = Account.open("Other", by=self.bob)
        other.deposit(Decimal("3.00"), by=self.bob)
        self.client.force_login(self.carol)
        self.assertEqual(items(self.client.get(reverse("accounts:list"))), [])
        self.account.leave(by=self.alice)
        self.account.deposit(Decimal("1.00"), by=self.bob)
        self.client.force_login(self.alice)
        self.assertEqual(items(self.client.get(reverse("accounts:list"))), [])

    def test_invitations_to_you_and_by_the_other_holders(self):
        self.account.invite("carol@example.com", by=self.bob)
        self.account.invite("dave@example.com", by=self.alice)  # alice's own: not listed
        listing = items(self.client.get(reverse("accounts:list")))
        self.assertTrue(listing[0].endswith(" Bob invited carol@example.com to hold Household"))
        self.assertEqual(len(listing), 1)  # not her own invitation, nor her own deposit

        self.client.force_login(self.carol)
        listing = items(self.client.get(reverse("accounts:list")))
        self.assertEqual(len(listing), 1)
        self.assertIn("Bob invited you to hold Household", listing[0])
        self.assertIn("the e-mail sent to carol@example.com", listing[0])

    def test_it_shows_at_most_twenty_with_a_bounded_number_of_queries(self):
        for n in range(30):
            self.account.deposit(Decimal(n + 1), by=self.bob)
        with self.assertNumQueries(9):
            response = self.client.get(reverse("accounts:list"))
        listing = items(response)
        self.assertEqual(len(listing), 20)
        self.assertIn("+$30.00", listing[0])
        self.assertIn("+$11.00", listing[-1])

    def test_requests_waiting_for_you_and_what_became_of_yours(self):
        self.account.set_rules(Decimal("100.00"), None, by=self.alice)
        theirs = self.account.withdraw(Decimal("150.00"), by=self.bob, memo="bike")
        self.account.withdraw(Decimal("200.00"), by=self.alice)  # her own: nothing to answer
        response = self.client.get(reverse("accounts:list"))
        listing = items(response)
        self.assertRegex(
            listing[0],
            r'^\w+ \d+, \d\d:\d\d Bob asks to withdraw \$150\.00 from "Household": '
            r"approve or reject it bike$",
        )
        self.assertContains(
            response, f'href="{reverse("accounts:detail", args=[self.account.pk])}"'
        )
        self.assertEqual(sum("asks to" in item for item in listing), 1)

        self.account.approve(theirs, by=self.alice)
        self.client.force_login(self.bob)
        listing = items(self.client.get(reverse("accounts:list")))
        self.assertIn(
            'Alice approved your request to withdraw $150.00 from "Household" bike', listing[0]
        )
        self.assertIn(
            'Alice asks to withdraw $200.00 from "Household": approve or reject it', listing[1]
        )

    def test_rejected_expired_and_rules_requests(self):
        self.account.set_rules(Decimal("100.00"), None, by=self.alice)
        rejected = self.account.withdraw(Decimal("150.00"), by=self.bob)
        self.account.reject(rejected, by=self.alice)
        rules = self.account.set_rules(Decimal("500.00"), None, by=self.bob)
        ApprovalRequest.objects.filter(pk=rules.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        # Past its expiry but not voided yet: alice can no longer answer it.
        self.assertNotIn("asks to", " ".join(items(self.client.get(reverse("accounts:list")))))
        self.account.void_expired_requests()
        self.client.force_login(self.bob)
        listing = items(self.client.get(reverse("accounts:list")))
        self.assertIn(
            'Your request to change the rules of "Household" (approval threshold $500.00) expired '
            "without an answer",
            listing[0],
        )
        self.assertIn(
            'Alice rejected your request to withdraw $150.00 from "Household"', listing[1]
        )
