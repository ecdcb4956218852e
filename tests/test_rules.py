"""The account's rules: the approval threshold and each holder's daily limit."""

from __future__ import annotations

from decimal import Decimal

from accounts.approvals import ApprovalRequest
from accounts.models import Account
from tests.base import BAD_AMOUNTS, HX, JointAccountTestCase


class RulesTests(JointAccountTestCase):
    def post(self, threshold="", limit="", **headers):
        data = {"approval_threshold": threshold, "daily_limit": limit}
        return self.client.post(self.url("rules"), data, **headers)

    def rules(self) -> tuple[Decimal | None, Decimal | None]:
        self.account.refresh_from_db()
        return self.account.approval_threshold, self.account.daily_limit

    def test_the_page_has_a_rules_section_with_both_fields(self):
        page = self.client.get(self.url("detail"))
        self.assertContains(page, 'id="rules"')
        self.assertContains(page, 'name="approval_threshold"')
        self.assertContains(page, 'name="daily_limit"')

    def test_turning_rules_on_applies_at_once(self):
        response = self.post("100", "250.50", **HX)

        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'id="rules-form"')
        self.assertContains(response, "The rules are saved.")
        self.assertEqual(self.rules(), (Decimal("100.00"), Decimal("250.50")))
        self.assertFalse(ApprovalRequest.objects.exists())

    def test_lowering_applies_at_once_without_javascript_too(self):
        self.post("100", "")
        response = self.post("50", "", follow=True)
        self.assertEqual(response.redirect_chain, [(self.url("detail"), 303)])
        self.assertEqual(self.rules(), (Decimal("50.00"), None))

    def test_raising_the_threshold_waits_for_another_holder(self):
        self.post("100", "")
        response = self.post("1000", "", **HX)

        self.assertEqual(response.status_code, 202)
        self.assertContains(response, "waiting for another holder", status_code=202)
        self.assertEqual(self.rules(), (Decimal("100.00"), None))
        request = ApprovalRequest.objects.get()
        self.assertEqual(
            (request.kind, request.sets_threshold, request.new_threshold, request.sets_daily_limit),
            ("rules", True, Decimal("1000.00"), False),
        )
        self.assertEqual(request.hold, Decimal("0.00"))

        self.account.approve(request, by=self.bob)
        self.assertEqual(self.rules(), (Decimal("1000.00"), None))

    def test_turning_a_rule_off_is_loosening(self):
        self.post("", "300")
        self.post("", "")
        self.assertEqual(self.rules(), (None, Decimal("300.00")))
        request = ApprovalRequest.objects.get()
        self.assertEqual((request.sets_daily_limit, request.new_daily_limit), (True, None))

    def test_tightening_one_rule_and_loosening_the_other_splits(self):
        self.post("100", "300")
        self.post("50", "500")  # threshold down: now; limit up: a request
        self.assertEqual(self.rules(), (Decimal("50.00"), Decimal("300.00")))
        request = ApprovalRequest.objects.get()
        self.assertEqual((request.sets_threshold, request.sets_daily_limit), (False, True))
        # bob tightens the threshold further meanwhile; approving the limit keeps it.
        self.client.force_login(self.bob)
        self.post("20", "300")
        self.account.approve(request, by=self.bob)
        self.assertEqual(self.rules(), (Decimal("20.00"), Decimal("500.00")))

    def test_alone_loosening_applies_at_once(self):
        solo = Account.open("Solo", by=self.alice)
        solo.set_rules(Decimal("100.00"), None, by=self.alice)
        self.assertIsNone(solo.set_rules(None, None, by=self.alice))
        solo.refresh_from_db()
        self.assertEqual((solo.approval_threshold, solo.daily_limit), (None, None))

    def test_bad_values_are_refused_and_nothing_changes(self):
        self.post("100", "200")
        version = Account.objects.get(pk=self.account.pk).version
        for bad in [value for value in BAD_AMOUNTS if value.strip()]:  # blank is "off"
            for field in ("threshold", "limit"):
                with self.subTest(value=bad, field=field):
                    values = {"threshold": "100", "limit": "200", field: bad}
                    response = self.post(values["threshold"], values["limit"], **HX)
                    self.assertEqual(response.status_code, 422)
        self.assertEqual(self.rules(), (Decimal("100.00"), Decimal("200.00")))
        self.assertEqual(Account.objects.get(pk=self.account.pk).version, version)
        self.assertFalse(ApprovalRequest.objects.exists())

    def test_the_rules_request_is_listed_for_bob_to_approve(self):
        self.post("100", "")
        self.post("1000", "")
        request = ApprovalRequest.objects.get()
        self.client.force_login(self.bob)
        page = self.client.get(self.url("detail"))
        self.assertContains(page, f'data-request-id="{request.pk}" data-state="pending"')
        self.assertContains(page, "approval threshold $1,000.00")

    def test_a_rule_change_names_its_account_once(self):
        self.account.set_rules(Decimal("100.00"), Decimal("50.00"), by=self.alice)
        self.assertEqual(
            str(self.account.rule_changes.get()),
            'Set the approval threshold of "Household" to $100.00 (it was off); set the daily '
            'limit of "Household" to $50.00 (it was off)',
        )
