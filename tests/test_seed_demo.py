from __future__ import annotations

from io import StringIO

from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings

from accounts.models import Account, LedgerEntry
from profiles.models import Profile


class SeedDemoTests(TestCase):
    def seed(self, *args):
        out = StringIO()
        call_command("seed_demo", *args, stdout=out)
        return out.getvalue()

    @override_settings(DEBUG=True)
    def test_it_creates_the_demo_and_is_idempotent(self):
        first = self.seed()
        counts = (Account.objects.count(), LedgerEntry.objects.count())
        second = self.seed()

        self.assertEqual((Account.objects.count(), LedgerEntry.objects.count()), counts)
        household = Account.objects.get(name="Household")
        self.assertEqual(first.splitlines()[-1], f"/accounts/{household.pk}/")
        self.assertEqual(second.splitlines()[-1], first.splitlines()[-1])
        emails = sorted(household.memberships.current().values_list("user__email", flat=True))
        self.assertEqual(emails, ["alice@example.com", "bob@example.com"])
        names = Profile.objects.order_by("display_name").values_list("display_name", flat=True)
        self.assertEqual(list(names), ["Alice", "Bob", "Carol"])
        call_command("verify_ledger", "--account", str(household.pk), stdout=StringIO())
        self.assertTrue(self.client.login(username="carol@example.com", password="demo-pass-2024"))
        self.assertEqual(self.client.get(f"/accounts/{household.pk}/").status_code, 404)

    @override_settings(DEBUG=False)
    def test_it_refuses_with_debug_off_unless_forced(self):
        with self.assertRaises(CommandError):
            self.seed()
        self.assertEqual(Account.objects.count(), 0)
        self.seed("--force")
        self.assertEqual(Account.objects.count(), 1)
