from __future__ import annotations

from decimal import Decimal

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from accounts.models import Account
from profiles.models import Profile

PASSWORD = "demo-pass-2024"  # a published demo password, refused in production
USERS = {"alice@example.com": "Alice", "bob@example.com": "Bob", "carol@example.com": "Carol"}
HISTORY = [  # (who, kind, amount, memo)
    ("alice@example.com", "deposit", "1200.00", "salary share"),
    ("bob@example.com", "deposit", "350.00", ""),
    ("alice@example.com", "withdraw", "84.20", "groceries"),
    ("bob@example.com", "withdraw", "465.80", "rent"),
]


class Command(BaseCommand):
    help = "Create the demo users and the 'Household' account (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="run even with DEBUG off")

    def handle(self, *args, force=False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("Refusing to create demo users with DEBUG off (use --force).")
        with transaction.atomic():
            users = {email: self._user(email, name) for email, name in USERS.items()}
            alice = users["alice@example.com"]
            household = Account.objects.held_by(alice).filter(name="Household").first()
            if household is None:
                household = Account.open("Household", by=users["alice@example.com"])
                household.memberships.create(user=users["bob@example.com"])
                for email, kind, amount, memo in HISTORY:
                    getattr(household, kind)(Decimal(amount), by=users[email], memo=memo)
        self.stdout.write(f"Demo users {', '.join(USERS)} with password {PASSWORD}")
        self.stdout.write(reverse("accounts:detail", args=[household.pk]))

    def _user(self, email, name):
        user, created = get_user_model().objects.get_or_create(
            email=email, defaults={"username": email.split("@")[0]}
        )
        if created:
            user.set_password(PASSWORD)
            user.save(update_fields=["password"])
        EmailAddress.objects.get_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        # A name the user changed on /profile/ stays: seeding again only fills in a missing one.
        Profile.objects.get_or_create(user=user, defaults={"display_name": name})
        return user
