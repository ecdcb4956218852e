from __future__ import annotations

from decimal import Decimal

from django.urls import reverse

from accounts.errors import AccountClosed, NotAHolder
from accounts.models import Account, Invitation, LedgerEntry, Membership
from tests.base import HX, JointAccountTestCase


class LeaveTests(JointAccountTestCase):
    def setUp(self):
        self.client.force_login(self.bob)
        self.account.deposit(Decimal("5.00"), by=self.bob)

    def test_a_holder_leaves_and_loses_access_while_the_others_keep_the_account(self):
        response = self.client.post(self.url("leave"), follow=True)

        self.assertEqual(response.redirect_chain, [(reverse("accounts:list"), 303)])
        self.assertContains(response, "You left Household")
        self.assertNotContains(response, f'href="{self.url("detail")}"')
        self.assertEqual(self.client.get(self.url("detail")).status_code, 404)
        membership = Membership.objects.get(account=self.account, user=self.bob)
        self.assertIsNotNone(membership.left_at)
        self.assertEqual(self.balance(), Decimal("1005.00"))

    def test_with_htmx_the_browser_goes_to_the_account_list(self):
        response = self.client.post(self.url("leave"), **HX)
        self.assertEqual(response["HX-Redirect"], reverse("accounts:list"))

    def test_the_history_keeps_naming_a_former_holder_and_the_page_lists_them(self):
        self.client.post(self.url("leave"))
        self.client.force_login(self.alice)
        page = self.client.get(self.url("detail"))

        self.assertContains(page, "<td>Bob</td>", html=True)  # his deposit
        self.assertContains(page, "Former holders")
        holders = page.content.decode().split("Former holders")
        self.assertIn("bob@example.com", holders[1].split("</ul>")[0])
        self.assertNotIn("bob@example.com", holders[0].split('id="holders-label"')[1])

    def test_the_last_holder_cannot_leave(self):
        self.client.post(self.url("leave"))
        self.client.force_login(self.alice)
        for headers in (HX, {}):
            with self.subTest(htmx=bool(headers)):
                response = self.client.post(self.url("leave"), **headers)
                self.assertContains(response, "You are the only holder", status_code=409)
                self.assertContains(response, 'id="account-actions"', status_code=409)
                self.assertEqual(bool(headers), b"<html" not in response.content)
        self.assertEqual(list(Account.objects.held_by(self.alice)), [self.account])

    def test_a_stale_page_gets_the_refusal_and_the_close_button(self):
        # Alice's page still shows "Leave" when Bob leaves; her click is refused and the
        # section she gets back offers what she can do now.
        self.client.post(self.url("leave"))
        self.client.force_login(self.alice)
        response = self.client.post(self.url("leave"), **HX)
        self.assertContains(response, 'id="close-form"', status_code=409)

    def test_a_holder_who_left_cannot_move_money_even_with_an_account_loaded_before(self):
        stale = Account.objects.get(pk=self.account.pk)  # e.g. a request already past its check
        self.account.leave(by=self.bob)
        for change in (stale.deposit, stale.withdraw):
            with self.subTest(change=change.__name__), self.assertRaises(NotAHolder):
                change(Decimal("1.00"), by=self.bob)
        self.assertEqual(self.balance(), Decimal("1005.00"))


class CloseTests(JointAccountTestCase):
    def empty_and_alone(self):
        self.account.leave(by=self.bob)
        self.account.withdraw(Decimal("1000.00"), by=self.alice)

    def test_the_last_holder_closes_an_empty_account(self):
        self.empty_and_alone()
        response = self.client.post(self.url("close"), follow=True)

        self.assertEqual(response.redirect_chain, [(self.url("detail"), 303)])
        self.assertContains(response, "Household is closed")
        self.assertContains(response, "This account is read-only")
        self.account.refresh_from_db()
        self.assertIsNotNone(self.account.closed_at)

    def test_with_htmx_the_browser_reloads_the_now_read_only_page(self):
        self.empty_and_alone()
        response = self.client.post(self.url("close"), **HX)
        self.assertEqual(response["HX-Redirect"], self.url("detail"))

    def test_money_left_in_the_account_blocks_closing(self):
        self.account.leave(by=self.bob)
        for headers in (HX, {}):
            with self.subTest(htmx=bool(headers)):
                response = self.client.post(self.url("close"), **headers)
                self.assertContains(response, "this one holds $1,000.00", status_code=409)
        self.account.refresh_from_db()
        self.assertIsNone(self.account.closed_at)

    def test_other_holders_block_closing(self):
        self.account.withdraw(Decimal("1000.00"), by=self.alice)
        response = self.client.post(self.url("close"), **HX)
        self.assertContains(response, "also held by Bob", status_code=409)
        self.account.refresh_from_db()
        self.assertIsNone(self.account.closed_at)

    def test_closing_revokes_pending_invitations(self):
        self.empty_and_alone()
        invitation, _ = self.account.invite("dave@example.com", by=self.alice)
        self.client.post(self.url("close"))
        invitation.refresh_from_db()
        self.assertEqual(invitation.state, Invitation.State.REVOKED)

    def test_a_close_that_committed_first_stops_a_change_from_an_older_read(self):
        self.empty_and_alone()
        stale = Account.objects.get(pk=self.account.pk)
        self.account.close(by=self.alice)
        with self.assertRaises(AccountClosed):
            stale.deposit(Decimal("1.00"), by=self.alice)
        self.assertEqual(self.balance(), Decimal("0.00"))


class ClosedAccountTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.account.leave(by=cls.bob)
        cls.account.withdraw(Decimal("1000.00"), by=cls.alice)
        cls.account.close(by=cls.alice)

    def assertUnchanged(self):
        self.assertEqual(self.balance(), Decimal("0.00"))
        self.assertEqual(LedgerEntry.objects.filter(account=self.account).count(), 2)
        self.assertFalse(Invitation.objects.exists())

    def test_every_write_answers_409_with_a_clear_message(self):
        writes = [
            ("deposit", {"amount": "1.00"}, 'id="deposit-form"'),
            ("withdraw", {"amount": "1.00"}, 'id="withdraw-form"'),
            ("invite", {"email": "dave@example.com"}, 'id="sharing"'),
        ]
        for name, data, partial in writes:
            for headers in (HX, {}):
                with self.subTest(name=name, htmx=bool(headers)):
                    response = self.client.post(self.url(name), data, **headers)
                    self.assertContains(response, "is read-only", status_code=409)
                    if headers:  # the form's partial, with the message in it
                        self.assertContains(response, partial, status_code=409)
                        self.assertNotContains(response, "<html", status_code=409)
                    else:  # the read-only page, which says why
                        self.assertContains(response, 'class="closed-note"', status_code=409)
        self.assertUnchanged()

    def test_even_bad_input_on_a_closed_account_changes_nothing(self):
        response = self.client.post(self.url("deposit"), {"amount": "abc"}, **HX)
        self.assertEqual(response.status_code, 422)
        self.assertUnchanged()

    def test_the_last_holder_still_reads_it_but_has_no_forms(self):
        page = self.client.get(self.url("detail"))
        self.assertContains(page, "This account is read-only")
        self.assertContains(page, 'id="entry-')
        for form in ("deposit-form", "withdraw-form", "invite-form", "leave-form", "close-form"):
            self.assertNotContains(page, f'id="{form}"')
        self.assertEqual(self.client.get(self.url("balance"), **HX).status_code, 200)
        listing = self.client.get(reverse("accounts:list"))
        self.assertContains(listing, "(closed)")

    def test_it_cannot_be_closed_or_left_again(self):
        self.assertContains(self.client.post(self.url("close")), "is read-only", status_code=409)
        self.assertContains(self.client.post(self.url("leave")), "is read-only", status_code=409)

    def test_a_holder_who_left_before_the_close_does_not_see_it(self):
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(self.url("detail")).status_code, 404)
