"""What the database itself refuses, whatever the code above it does."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account, Invitation, Membership
from tests.base import JointAccountTestCase


class MembershipConstraintTests(JointAccountTestCase):
    def test_past_memberships_do_not_block_a_current_one(self):
        Membership.objects.filter(user=self.bob).update(left_at=timezone.now())
        self.account.memberships.create(user=self.bob)
        self.assertEqual(Membership.objects.filter(user=self.bob).count(), 2)
        self.assertEqual(list(Account.objects.held_by(self.bob)), [self.account])

    def test_only_one_current_membership_per_user_and_account(self):
        Membership.objects.filter(user=self.bob).update(left_at=timezone.now())
        self.account.memberships.create(user=self.bob)
        with self.assertRaises(IntegrityError), transaction.atomic():
            self.account.memberships.create(user=self.bob)

    def test_leaving_cannot_come_before_joining(self):
        membership = Membership.objects.get(user=self.bob)
        with self.assertRaises(IntegrityError), transaction.atomic():
            Membership.objects.filter(pk=membership.pk).update(
                left_at=membership.joined_at - timedelta(seconds=1)
            )

    def test_held_by_means_a_current_membership(self):
        Membership.objects.filter(user=self.bob).update(left_at=timezone.now())
        self.assertEqual(list(Account.objects.held_by(self.bob)), [])
        self.assertEqual(list(Account.objects.held_by(self.alice)), [self.account])


class InvitationConstraintTests(JointAccountTestCase):
    def make(self, state="pending"):
        now = timezone.now()
        return Invitation.objects.create(
            account=self.account,
            email="dave@example.com",
            invited_by=self.alice,
            token_hash=Invitation.hash_token("x"),
            expires_at=now + Invitation.LIFETIME,
            state=state,
        )

    def test_one_pending_invitation_per_account_and_address(self):
        self.make()
        with self.assertRaises(IntegrityError), transaction.atomic():
            self.make()

    def test_answered_invitations_do_not_block_a_new_one(self):
        for state in ("accepted", "declined", "revoked", "expired"):
            self.make(state)
        self.make()
        self.assertEqual(Invitation.objects.count(), 5)
