from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import LedgerEntry
from tests.base import AdminTestCase


class AdminTests(AdminTestCase):
    def test_the_pages_render(self):
        for url in (
            reverse("admin:accounts_account_changelist"),
            reverse("admin:accounts_account_change", args=[self.account.pk]),
            reverse("admin:accounts_membership_changelist"),
            reverse("admin:accounts_ledgerentry_changelist"),
        ):
            with self.subTest(url=url):
                self.assertEqual(self.client.get(url).status_code, 200)

    def test_the_ledger_is_read_only(self):
        entry = self.account.entries.first()
        self.assertEqual(
            self.client.get(reverse("admin:accounts_ledgerentry_add")).status_code, 403
        )
        delete = reverse("admin:accounts_ledgerentry_delete", args=[entry.pk])
        self.assertEqual(self.client.post(delete, {"post": "yes"}).status_code, 403)
        change = reverse("admin:accounts_ledgerentry_change", args=[entry.pk])
        self.client.post(change, {"amount": "1.00"})
        entry.refresh_from_db()
        self.assertEqual(entry.amount, Decimal("1000.00"))

    def test_the_balance_is_read_only_and_renaming_never_writes_it(self):
        url = reverse("admin:accounts_account_change", args=[self.account.pk])
        data = {
            "name": "Home",
            "balance": "0.00",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        }
        with CaptureQueriesContext(connection) as queries:
            response = self.client.post(url, data)
        self.assertEqual(response.status_code, 302)
        self.account.refresh_from_db()
        self.assertEqual((self.account.name, self.account.balance), ("Home", Decimal("1000.00")))
        # The save names only the name: a balance the form read a moment ago is never written
        # back over a deposit that committed meanwhile.
        updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "accounts_account"')]
        self.assertEqual(len(updates), 1)
        self.assertNotIn('"balance"', updates[0])

    def test_memberships_and_invitations_cannot_be_edited(self):
        # Saving a form's stale copy could undo a leave or an accept that committed meanwhile.
        membership = self.account.memberships.get(user=self.bob)
        url = reverse("admin:accounts_membership_change", args=[membership.pk])
        self.client.post(url, {"_save": "Save"})
        self.assertFalse(self.client.get(url).context["has_change_permission"])

    def test_a_correction_goes_through_the_ledger(self):
        url = reverse("admin:accounts_account_correct", args=[self.account.pk])
        self.assertEqual(self.client.get(url).status_code, 200)
        response = self.client.post(url, {"kind": "withdraw", "amount": "10.00"})

        self.assertEqual(response.status_code, 302)
        entry = LedgerEntry.objects.latest("pk")
        self.assertEqual(
            (entry.kind, entry.amount, entry.created_by),
            (LedgerEntry.Kind.WITHDRAWAL, Decimal("10.00"), self.admin),
        )
        self.assertEqual(self.balance(), Decimal("990.00"))

    def test_a_correction_cannot_overdraw(self):
        url = reverse("admin:accounts_account_correct", args=[self.account.pk])
        response = self.client.post(url, {"kind": "withdraw", "amount": "2000.00"})
        self.assertContains(response, "Insufficient funds", status_code=422)
        self.assertEqual(self.balance(), Decimal("1000.00"))
