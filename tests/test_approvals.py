"""Withdrawals and transfers that wait for another holder: requests, holds, the available
balance, approve / reject / cancel, and what the page shows of them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from io import StringIO

from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.approvals import ApprovalRequest
from accounts.errors import NotYourRequest, OwnRequest, RequestNotPending, RequestsPending
from accounts.models import Account, LedgerEntry
from tests.base import HX, JointAccountTestCase, make_user

State = ApprovalRequest.State


class SharedControlTestCase(JointAccountTestCase):
    """Household as in JointAccountTestCase ($1000.00, alice and bob), with a $100.00
    approval threshold."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        Account.objects.filter(pk=cls.account.pk).update(approval_threshold=Decimal("100.00"))
        cls.account.refresh_from_db()

    def request_url(self, name: str, request: ApprovalRequest) -> str:
        return reverse(f"accounts:{name}_request", args=[self.account.pk, request.pk])

    def ask(self, amount="150.00", by=None, **kwargs) -> ApprovalRequest:
        result = self.account.withdraw(Decimal(amount), by=by or self.alice, **kwargs)
        self.assertIsInstance(result, ApprovalRequest)
        return result

    def held(self) -> Decimal:
        self.account.refresh_from_db()
        return self.account.held


class RequestTests(SharedControlTestCase):
    def test_a_withdrawal_above_the_threshold_waits_with_htmx_202(self):
        version = Account.objects.get(pk=self.account.pk).version
        response = self.client.post(self.url("withdraw"), {"amount": "150.00"}, **HX)

        self.assertEqual(response.status_code, 202)
        self.assertContains(response, "waiting for another holder", status_code=202)
        self.assertContains(response, 'id="withdraw-form"', status_code=202)
        self.assertEqual(self.data_attr(response, "available", "data-available"), "850.00")
        self.assertEqual(self.data_balance(response), "1000.00")
        self.assertEqual(self.balance(), Decimal("1000.00"))
        self.assertEqual(self.held(), Decimal("150.00"))
        self.assertGreater(self.account.version, version)  # the co-holders' poll sees it
        request = ApprovalRequest.objects.get()
        self.assertEqual(
            (request.kind, request.amount, request.requested_by, request.state),
            ("withdrawal", Decimal("150.00"), self.alice, "pending"),
        )
        self.assertEqual(request.expires_at - request.created_at, timedelta(hours=48))
        self.assertFalse(LedgerEntry.objects.filter(kind="withdrawal").exists())

    def test_without_javascript_it_answers_303_with_the_message(self):
        response = self.client.post(self.url("withdraw"), {"amount": "150.00"}, follow=True)

        self.assertEqual(response.redirect_chain, [(self.url("detail"), 303)])
        self.assertContains(response, "waiting for another holder")
        self.assertEqual(self.data_attr(response, "available", "data-available"), "850.00")

    def test_the_threshold_itself_does_not_need_approval(self):
        self.account.withdraw(Decimal("100.00"), by=self.alice)
        self.assertEqual(self.balance(), Decimal("900.00"))
        self.assertFalse(ApprovalRequest.objects.exists())

    def test_a_double_click_makes_one_request(self):
        key = str(uuid.uuid4())
        data = {"amount": "150.00", "idempotency_key": key}
        first = self.client.post(self.url("withdraw"), data, **HX)
        second = self.client.post(self.url("withdraw"), data, **HX)

        self.assertEqual((first.status_code, second.status_code), (202, 202))
        self.assertEqual(second["Idempotent-Replayed"], "true")
        self.assertEqual(ApprovalRequest.objects.count(), 1)
        self.assertEqual(self.held(), Decimal("150.00"))

    def test_the_same_key_for_another_amount_is_a_conflict(self):
        key = uuid.uuid4()
        self.ask(idempotency_key=key)
        response = self.client.post(
            self.url("withdraw"), {"amount": "160.00", "idempotency_key": str(key)}, **HX
        )
        self.assertEqual(response.status_code, 409)
        self.assertEqual(ApprovalRequest.objects.count(), 1)

    def test_every_withdrawal_is_checked_against_the_available_balance(self):
        self.ask("900.00")  # available: 100.00
        for amount in ("100.01", "150.00"):
            with self.subTest(amount=amount):
                response = self.client.post(self.url("withdraw"), {"amount": amount}, **HX)
                self.assertContains(
                    response, "Insufficient funds: $100.00 available", status_code=422
                )
        self.account.withdraw(Decimal("100.00"), by=self.bob)
        self.assertEqual((self.balance(), self.held()), (Decimal("900.00"), Decimal("900.00")))
        self.assertEqual(ApprovalRequest.objects.count(), 1)

    def test_a_transfer_above_the_threshold_holds_the_amount_too(self):
        savings = Account.open("Savings", by=self.alice)
        response = self.client.post(
            self.url("transfer"), {"amount": "500.00", "to_account": savings.pk}, **HX
        )
        self.assertEqual(response.status_code, 202)
        request = ApprovalRequest.objects.get()
        self.assertEqual((request.kind, request.target), ("transfer", savings))
        self.assertEqual(self.held(), Decimal("500.00"))
        savings.refresh_from_db()
        self.assertEqual(savings.balance, Decimal("0.00"))

    def test_deposits_ignore_holds_and_rules(self):
        self.ask("900.00")
        self.account.deposit(Decimal("5000.00"), by=self.alice)
        self.assertEqual(self.balance(), Decimal("6000.00"))

    def test_alone_a_holder_is_not_held_up_by_the_rules(self):
        solo = Account.open("Solo", by=self.alice)
        solo.deposit(Decimal("500.00"), by=self.alice)
        Account.objects.filter(pk=solo.pk).update(approval_threshold=Decimal("10.00"))
        self.assertIsInstance(solo.withdraw(Decimal("50.00"), by=self.alice), LedgerEntry)

    def test_the_database_refuses_holds_beyond_the_balance(self):
        from django.db import IntegrityError, transaction

        with self.assertRaises(IntegrityError), transaction.atomic():
            Account.objects.filter(pk=self.account.pk).update(held=Decimal("1000.01"))
        with self.assertRaises(IntegrityError), transaction.atomic():
            Account.objects.filter(pk=self.account.pk).update(held=Decimal("-0.01"))


class DailyLimitTests(SharedControlTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        Account.objects.filter(pk=cls.account.pk).update(
            approval_threshold=None, daily_limit=Decimal("200.00")
        )

    def test_each_holder_has_their_own_daily_allowance(self):
        self.account.withdraw(Decimal("150.00"), by=self.alice)
        self.assertIsInstance(self.account.withdraw(Decimal("50.00"), by=self.alice), LedgerEntry)
        waiting = self.account.withdraw(Decimal("0.01"), by=self.alice)
        self.assertIsInstance(waiting, ApprovalRequest)
        self.assertIsInstance(self.account.withdraw(Decimal("200.00"), by=self.bob), LedgerEntry)

    def test_transfers_out_count_and_approved_withdrawals_do_not(self):
        savings = Account.open("Savings", by=self.alice)
        self.account.transfer(savings, Decimal("190.00"), by=self.alice)
        request = self.account.withdraw(Decimal("20.00"), by=self.alice)
        self.assertIsInstance(request, ApprovalRequest)
        self.account.approve(request, by=self.bob)
        # 190.00 taken out without approval; the approved 20.00 does not eat the allowance.
        self.assertIsInstance(self.account.withdraw(Decimal("10.00"), by=self.alice), LedgerEntry)

    def test_yesterdays_withdrawals_do_not_count(self):
        from unittest import mock

        yesterday = timezone.now() - timedelta(days=1)
        with mock.patch("django.utils.timezone.now", return_value=yesterday):
            self.account.withdraw(Decimal("200.00"), by=self.alice)
        self.assertIsInstance(self.account.withdraw(Decimal("200.00"), by=self.alice), LedgerEntry)


class DecisionTests(SharedControlTestCase):
    def setUp(self):
        super().setUp()
        self.request = self.ask("150.00")
        self.client.force_login(self.bob)

    def test_bob_approves_and_the_money_moves_once(self):
        response = self.client.post(self.request_url("approve", self.request), **HX)

        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.data_balance(response), "850.00")
        self.assertEqual(self.data_attr(response, "available", "data-available"), "850.00")
        self.assertEqual((self.balance(), self.held()), (Decimal("850.00"), Decimal("0.00")))
        self.request.refresh_from_db()
        self.assertEqual((self.request.state, self.request.decided_by), (State.APPROVED, self.bob))
        entry = self.request.entry
        self.assertEqual(
            (entry.kind, entry.amount, entry.created_by, entry.approved_by),
            ("withdrawal", Decimal("150.00"), self.alice, self.bob),
        )
        again = self.client.post(self.request_url("approve", self.request), **HX)
        self.assertContains(again, "already approved by Bob", status_code=409)
        self.assertEqual(LedgerEntry.objects.filter(kind="withdrawal").count(), 1)
        call_command("verify_ledger", stdout=StringIO())

    def test_a_request_holding_all_the_money_can_be_approved(self):
        self.account.withdraw(Decimal("50.00"), by=self.bob)
        self.account.withdraw(Decimal("50.00"), by=self.alice)
        Account.objects.filter(pk=self.account.pk).update(approval_threshold=None)
        self.account.withdraw(Decimal("750.00"), by=self.bob)  # all that is available
        self.assertEqual((self.balance(), self.held()), (Decimal("150.00"), Decimal("150.00")))
        self.account.approve(self.request, by=self.bob)
        self.assertEqual((self.balance(), self.held()), (Decimal("0.00"), Decimal("0.00")))

    def test_approving_without_javascript_redirects_with_a_message(self):
        response = self.client.post(self.request_url("approve", self.request), follow=True)
        self.assertEqual(response.redirect_chain, [(self.url("detail"), 303)])
        self.assertContains(response, "Approved")
        self.assertEqual(self.balance(), Decimal("850.00"))

    def test_an_approved_transfer_posts_both_halves(self):
        savings = Account.open("Savings", by=self.alice)
        request = self.account.transfer(savings, Decimal("300.00"), by=self.alice)
        self.account.approve(request, by=self.bob)

        savings.refresh_from_db()
        self.assertEqual((self.balance(), savings.balance), (Decimal("700.00"), Decimal("300.00")))
        out = LedgerEntry.objects.get(kind="transfer_out")
        self.assertEqual((out.approved_by, out.paired_in.approved_by), (self.bob, self.bob))
        call_command("verify_ledger", stdout=StringIO())

    def test_a_transfer_to_an_account_the_requester_left_is_refused_naming_them(self):
        savings = Account.open("Savings", by=self.alice)
        savings.add_holder(self.carol)
        request = self.account.transfer(savings, Decimal("300.00"), by=self.alice)
        savings.leave(by=self.alice)
        response = self.client.post(self.request_url("approve", request), **HX)
        # A name, not an address: Bob need not know Alice's e-mail address.
        self.assertContains(response, "Savings is no longer held by Alice", status_code=409)
        self.assertNotContains(response, "alice@example.com", status_code=409)
        self.assertEqual((self.balance(), self.held()), (Decimal("1000.00"), Decimal("450.00")))

    def test_bob_rejects_and_the_hold_is_released(self):
        response = self.client.post(self.request_url("reject", self.request), **HX)

        self.assertEqual(response.status_code, 200)
        self.assertEqual((self.balance(), self.held()), (Decimal("1000.00"), Decimal("0.00")))
        self.request.refresh_from_db()
        self.assertEqual(self.request.state, State.REJECTED)
        self.assertFalse(LedgerEntry.objects.filter(kind="withdrawal").exists())

    def test_alice_cancels_her_own(self):
        self.client.force_login(self.alice)
        response = self.client.post(self.request_url("cancel", self.request), **HX)

        self.assertEqual(response.status_code, 200)
        self.request.refresh_from_db()
        self.assertEqual((self.request.state, self.held()), (State.CANCELLED, Decimal("0.00")))

    def test_alice_cannot_approve_or_reject_her_own_nor_bob_cancel_it(self):
        self.client.force_login(self.alice)
        for name in ("approve", "reject"):
            with self.subTest(name=name):
                response = self.client.post(self.request_url(name, self.request), **HX)
                self.assertEqual(response.status_code, 403)
        self.client.force_login(self.bob)
        response = self.client.post(self.request_url("cancel", self.request), **HX)
        self.assertEqual(response.status_code, 403)
        self.request.refresh_from_db()
        self.assertEqual((self.request.state, self.held()), (State.PENDING, Decimal("150.00")))
        with self.assertRaises(OwnRequest):
            self.account.approve(self.request, by=self.alice)
        with self.assertRaises(NotYourRequest):
            self.account.cancel(self.request, by=self.bob)

    def test_a_request_no_longer_pending_says_what_happened(self):
        self.account.cancel(self.request, by=self.alice)
        for name in ("approve", "reject"):
            with self.subTest(name=name):
                response = self.client.post(self.request_url(name, self.request), **HX)
                self.assertContains(response, "was cancelled by Alice", status_code=409)
        with self.assertRaises(RequestNotPending):
            self.account.approve(self.request, by=self.bob)
        self.assertEqual(self.balance(), Decimal("1000.00"))

    def test_outsiders_and_other_accounts_requests_get_404(self):
        self.client.force_login(self.carol)
        self.assertEqual(
            self.client.post(self.request_url("approve", self.request)).status_code, 404
        )
        other = Account.open("Carol's", by=self.carol)
        url = reverse("accounts:approve_request", args=[other.pk, self.request.pk])
        self.assertEqual(self.client.post(url).status_code, 404)
        self.assertEqual(self.held(), Decimal("150.00"))

    def test_the_approval_is_covered_by_the_hash_chain(self):
        from tests.tampering import tamper

        approved = self.account.approve(self.request, by=self.bob)
        call_command("verify_ledger", stdout=StringIO())
        tamper(
            "UPDATE accounts_ledgerentry SET approved_by_id = %s WHERE id = %s",
            [self.carol.pk, approved.entry_id],
        )
        with self.assertRaisesMessage(Exception, "the hash does not match"):
            call_command("verify_ledger", stdout=StringIO())


class ExpiryTests(SharedControlTestCase):
    def setUp(self):
        super().setUp()
        self.request = self.ask("150.00")
        ApprovalRequest.objects.filter(pk=self.request.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )

    def test_the_page_shows_it_expired_and_the_available_balance_without_it(self):
        page = self.client.get(self.url("detail"))
        self.assertContains(page, f'data-request-id="{self.request.pk}" data-state="expired"')
        self.assertEqual(self.data_attr(page, "available", "data-available"), "1000.00")

    def test_approving_an_expired_request_voids_it_and_says_so(self):
        self.client.force_login(self.bob)
        response = self.client.post(self.request_url("approve", self.request), **HX)
        self.assertContains(response, "expired", status_code=409)
        self.request.refresh_from_db()
        self.assertEqual((self.request.state, self.held()), (State.EXPIRED, Decimal("0.00")))
        self.assertEqual(self.balance(), Decimal("1000.00"))

    def test_the_next_withdrawal_voids_it_first(self):
        # 900.00 is more than the 850.00 available while the expired request still holds.
        self.ask("900.00", by=self.bob)
        self.request.refresh_from_db()
        self.assertEqual((self.request.state, self.held()), (State.EXPIRED, Decimal("900.00")))

    def test_the_command_voids_every_due_request_once(self):
        fresh = self.ask("200.00", by=self.bob)  # voids the expired one on its way
        due = self.ask("120.00")
        ApprovalRequest.objects.filter(pk=due.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        out = StringIO()
        call_command("expire_requests", stdout=out)
        self.assertIn("Expired 1 request on 1 account.", out.getvalue())
        due.refresh_from_db()
        fresh.refresh_from_db()
        self.assertEqual((due.state, fresh.state), (State.EXPIRED, State.PENDING))
        self.assertEqual(self.held(), Decimal("200.00"))
        out = StringIO()
        call_command("expire_requests", stdout=out)
        self.assertIn("0 requests", out.getvalue())
        call_command("verify_ledger", stdout=StringIO())


class MembershipTests(SharedControlTestCase):
    def test_a_holder_who_leaves_has_their_pending_requests_cancelled(self):
        request = self.ask("150.00", by=self.bob)
        mine = self.ask("120.00", by=self.alice)
        self.account.leave(by=self.bob)

        request.refresh_from_db()
        mine.refresh_from_db()
        self.assertEqual((request.state, mine.state), (State.CANCELLED, State.PENDING))
        self.assertEqual(self.held(), Decimal("120.00"))

    def test_an_account_with_pending_requests_cannot_be_closed(self):
        erin = make_user("erin@example.com")
        solo = Account.open("Solo", by=erin)
        solo.add_holder(self.bob)
        Account.objects.filter(pk=solo.pk).update(approval_threshold=Decimal("1.00"))
        solo.deposit(Decimal("5.00"), by=erin)
        request = solo.withdraw(Decimal("5.00"), by=erin)
        solo.leave(by=self.bob)
        with self.assertRaises(RequestsPending):
            solo.close(by=erin)
        solo.cancel(request, by=erin)
        solo.withdraw(Decimal("5.00"), by=erin)
        solo.close(by=erin)


class PageTests(SharedControlTestCase):
    def test_every_holder_sees_the_requests_pending_first_with_their_buttons(self):
        old = self.ask("120.00")
        self.account.cancel(old, by=self.alice)
        waiting = self.ask("150.00")
        self.client.force_login(self.bob)
        page = self.client.get(self.url("detail"))
        body = page.content.decode()

        self.assertLess(
            body.index(f'data-request-id="{waiting.pk}"'), body.index(f'data-request-id="{old.pk}"')
        )
        self.assertContains(page, f'data-request-id="{waiting.pk}" data-state="pending"')
        self.assertContains(page, f'data-request-id="{old.pk}" data-state="cancelled"')
        self.assertContains(page, self.request_url("approve", waiting))
        self.assertContains(page, self.request_url("reject", waiting))
        self.assertNotContains(page, self.request_url("cancel", waiting))
        self.assertEqual(self.data_attr(page, "available", "data-available"), "850.00")

    def test_requests_answered_more_than_a_week_ago_are_not_listed(self):
        old = self.ask("120.00")
        self.account.cancel(old, by=self.alice)
        ApprovalRequest.objects.filter(pk=old.pk).update(
            decided_at=timezone.now() - timedelta(days=8)
        )
        self.assertNotContains(self.client.get(self.url("detail")), f'data-request-id="{old.pk}"')

    def test_the_poll_changes_with_a_new_request(self):
        first = self.client.get(self.url("balance", after=0))
        self.ask("150.00", by=self.bob)
        second = self.client.get(self.url("balance", after=0), HTTP_IF_NONE_MATCH=first["ETag"])
        self.assertEqual(second.status_code, 200)
        self.assertContains(second, 'data-state="pending"')
        self.assertEqual(self.data_attr(second, "available", "data-available"), "850.00")

    def test_the_statement_lists_posted_entries_with_who_approved(self):
        request = self.ask("150.00")
        self.ask("130.00")  # still pending: not in the statement
        self.account.approve(request, by=self.bob)
        lines = self.client.get(self.url("statement")).getvalue().decode().splitlines()
        header = lines[0].split(",")
        approved = header.index("approved_by")
        rows = [line.split(",") for line in lines[1:]]
        withdrawals = [row for row in rows if row[2] == "withdrawal"]
        self.assertEqual([row[approved] for row in withdrawals], ["bob@example.com"])
        self.assertEqual(len(rows), 4)  # opening, deposit, the approved withdrawal, closing
