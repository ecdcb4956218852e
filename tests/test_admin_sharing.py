from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.models import Invitation, LedgerEntry, Membership
from tests.base import (
    AdminTestCase,
    JointAccountTestCase,
    give_authenticator,
    make_user,
    sign_in_with_two_factor,
)


class AdminSharingTests(AdminTestCase):
    def add_holder(self, user, account=None):
        url = reverse("admin:accounts_membership_add")
        return self.client.post(url, {"account": (account or self.account).pk, "user": user.pk})

    def test_the_pages_render(self):
        invitation, _ = self.account.invite("dave@example.com", by=self.alice)
        membership = self.account.memberships.first()
        for url in (
            reverse("admin:accounts_invitation_changelist"),
            reverse("admin:accounts_invitation_change", args=[invitation.pk]),
            reverse("admin:accounts_membership_add"),
            reverse("admin:accounts_membership_change", args=[membership.pk]),
        ):
            with self.subTest(url=url):
                self.assertEqual(self.client.get(url).status_code, 200)

    def test_staff_add_a_holder(self):
        response = self.add_holder(self.carol)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(self.account.memberships.current().filter(user=self.carol).exists())

    def test_staff_cannot_add_a_current_holder_twice(self):
        response = self.add_holder(self.bob)
        self.assertContains(response, "already holds this account")
        self.assertEqual(Membership.objects.filter(user=self.bob).count(), 1)

    def test_staff_cannot_pass_the_holder_limit(self):
        with self.settings(JOINTBANK_MAX_HOLDERS=2):
            response = self.add_holder(self.carol)
        self.assertContains(response, "at most 2 holders")
        self.assertEqual(self.account.memberships.current().count(), 2)

    def test_staff_cannot_add_a_holder_to_a_closed_account(self):
        self.account.leave(by=self.bob)
        self.account.withdraw(Decimal("1000.00"), by=self.alice)
        self.account.close(by=self.alice)
        self.assertContains(self.add_holder(self.carol), "is read-only")
        self.assertFalse(Membership.objects.filter(user=self.carol).exists())

    def test_ending_a_membership_follows_the_leave_rules(self):
        url = reverse("admin:accounts_membership_changelist")
        bob = Membership.objects.get(user=self.bob)
        alice = Membership.objects.get(user=self.alice)
        action = {"action": "end_memberships", "_selected_action": [bob.pk]}
        self.client.post(url, action)
        bob.refresh_from_db()
        self.assertIsNotNone(bob.left_at)

        response = self.client.post(url, {**action, "_selected_action": [alice.pk]}, follow=True)
        self.assertContains(response, "You are the only holder")
        alice.refresh_from_db()
        self.assertIsNone(alice.left_at)

    def test_memberships_and_invitations_cannot_be_deleted(self):
        membership = self.account.memberships.first()
        invitation, _ = self.account.invite("dave@example.com", by=self.alice)
        for url in (
            reverse("admin:accounts_membership_delete", args=[membership.pk]),
            reverse("admin:accounts_invitation_delete", args=[invitation.pk]),
        ):
            with self.subTest(url=url):
                self.assertEqual(self.client.post(url, {"post": "yes"}).status_code, 403)
        self.assertTrue(Membership.objects.filter(pk=membership.pk).exists())
        self.assertEqual(self.client.get(reverse("admin:accounts_invitation_add")).status_code, 403)

    def test_staff_revoke_pending_invitations_and_nothing_else(self):
        pending, _ = self.account.invite("dave@example.com", by=self.alice)
        used, _ = self.account.invite("erin@example.com", by=self.alice)
        used.accept(make_user("erin@example.com"))
        url = reverse("admin:accounts_invitation_changelist")
        action = {"action": "revoke", "_selected_action": [pending.pk, used.pk]}
        response = self.client.post(url, action, follow=True)

        self.assertContains(response, "has already been accepted")
        states = dict(Invitation.objects.values_list("email", "state"))
        self.assertEqual(states, {"dave@example.com": "revoked", "erin@example.com": "accepted"})

    def test_the_invitation_page_does_not_show_the_token_hash(self):
        invitation, _ = self.account.invite("dave@example.com", by=self.alice)
        page = self.client.get(reverse("admin:accounts_invitation_change", args=[invitation.pk]))
        self.assertNotContains(page, invitation.token_hash)

    def test_corrections_by_staff_who_hold_nothing_work_on_open_accounts_only(self):
        url = reverse("admin:accounts_account_correct", args=[self.account.pk])
        response = self.client.post(url, {"kind": "deposit", "amount": "1.00"})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(LedgerEntry.objects.latest("pk").created_by, self.admin)

        self.account.leave(by=self.bob)
        self.account.withdraw(Decimal("1001.00"), by=self.alice)
        self.account.close(by=self.alice)
        response = self.client.post(url, {"kind": "deposit", "amount": "1.00"})
        self.assertContains(response, "is read-only", status_code=422)
        self.assertEqual(self.balance(), Decimal("0.00"))


class AdminActionPermissionTests(JointAccountTestCase):
    """Ending a membership and revoking an invitation need the model's change permission;
    view-only staff see the lists but can run neither action."""

    def setUp(self):
        self.invitation, _ = self.account.invite("dave@example.com", by=self.alice)
        self.bob_membership = Membership.objects.get(user=self.bob)

    def sign_in_staff(self, *codenames):
        staff = make_user("staff@example.com")
        staff.is_staff = True
        staff.save()
        staff.user_permissions.set(
            Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
        )
        sign_in_with_two_factor(self.client, staff, give_authenticator(staff))

    def run_actions(self) -> list:
        """Both actions, as the admin's action form sends them; the pages' action menus."""
        pages = []
        for changelist, action, pk in (
            ("membership", "end_memberships", self.bob_membership.pk),
            ("invitation", "revoke", self.invitation.pk),
        ):
            url = reverse(f"admin:accounts_{changelist}_changelist")
            page = self.client.get(url)
            self.assertEqual(page.status_code, 200)
            pages.append(page)
            self.client.post(url, {"action": action, "_selected_action": [pk]})
        self.bob_membership.refresh_from_db()
        self.invitation.refresh_from_db()
        return pages

    def test_view_only_staff_cannot_run_them(self):
        self.sign_in_staff("view_membership", "view_invitation")
        memberships, invitations = self.run_actions()

        self.assertIsNone(self.bob_membership.left_at)
        self.assertEqual(self.invitation.state, "pending")
        self.assertNotContains(memberships, 'value="end_memberships"')
        self.assertNotContains(invitations, 'value="revoke"')

    def test_staff_who_may_change_them_can(self):
        self.sign_in_staff(
            "view_membership", "change_membership", "view_invitation", "change_invitation"
        )
        memberships, invitations = self.run_actions()

        self.assertIsNotNone(self.bob_membership.left_at)
        self.assertEqual(self.invitation.state, "revoked")
        self.assertContains(memberships, 'value="end_memberships"')
        self.assertContains(invitations, 'value="revoke"')
