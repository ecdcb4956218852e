from __future__ import annotations

from decimal import Decimal

from django.urls import reverse

from accounts.models import Account
from notifications.models import Notification, Preference
from tests.base import AdminTestCase


class ReadOnlyAdminTests(AdminTestCase):
    """The admins built on ReadOnlyAdmin: even a superuser gets 403 on every add, change and
    delete POST, and no row of theirs changes."""

    def setUp(self):
        super().setUp()
        Account.objects.filter(pk=self.account.pk).update(approval_threshold=Decimal("10.00"))
        request = self.account.withdraw(Decimal("20.00"), by=self.bob)
        invitation, _ = self.account.invite("dave@example.com", by=self.alice)
        entry = self.account.entries.latest("seq")
        notification = Notification.objects.create(
            account=self.account, entry=entry, recipient=self.bob
        )
        preference = Preference.objects.create(account=self.account, user=self.bob, when="never")
        # admin URL name -> (row, a change its form would make if it were allowed)
        self.rows = {
            "accounts_ledgerentry": (entry, {"amount": "1.00", "memo": "edited"}),
            "accounts_approvalrequest": (request, {"amount": "1.00", "state": "approved"}),
            "accounts_invitation": (invitation, {"email": "eve@example.com"}),
            "notifications_notification": (notification, {"sent_at": "2020-01-01 00:00"}),
            "notifications_preference": (preference, {"when": "always"}),
        }

    def snapshot(self, row) -> list[dict]:
        return list(type(row).objects.order_by("pk").values())

    def test_add_change_and_delete_answer_403_and_change_nothing(self):
        for name, (row, data) in self.rows.items():
            before = self.snapshot(row)
            posts = {
                "add": (reverse(f"admin:{name}_add"), data),
                "change": (reverse(f"admin:{name}_change", args=[row.pk]), data),
                "delete": (reverse(f"admin:{name}_delete", args=[row.pk]), {"post": "yes"}),
            }
            for view, (url, body) in posts.items():
                with self.subTest(admin=name, view=view):
                    self.assertEqual(self.client.post(url, body).status_code, 403)
            with self.subTest(admin=name, view="rows"):
                self.assertEqual(self.snapshot(row), before)

    def test_the_rows_can_still_be_seen(self):
        for name, (row, _) in self.rows.items():
            with self.subTest(admin=name):
                self.assertEqual(
                    self.client.get(reverse(f"admin:{name}_changelist")).status_code, 200
                )
                change = reverse(f"admin:{name}_change", args=[row.pk])
                self.assertEqual(self.client.get(change).status_code, 200)
