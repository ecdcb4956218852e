import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.errors import AccountError
from accounts.models import Account

PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
# Interest is posted by the bank, not a holder; the ledger's "who" is this inactive user.
SYSTEM_USERNAME = "jointbank-interest"
SYSTEM_EMAIL = "interest@jointbank.invalid"


class Command(BaseCommand):
    help = (
        "Credit one month of interest (JOINTBANK_INTEREST_RATE per year, on the balance at "
        "posting time, rounded half-even to the cent) to every open account, at most once per "
        "account and period: safe to re-run and to run twice at once, e.g. from cron."
    )

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="the month, YYYY-MM")

    def handle(self, *args, period, **options):
        if not PERIOD.fullmatch(period):
            raise CommandError(f"--period must be a month like 2026-01, not {period!r}.")
        if period > timezone.now().strftime("%Y-%m"):
            raise CommandError(f"{period} has not begun yet.")
        rate = settings.JOINTBANK_INTEREST_RATE
        system = self._system_user()
        posted = skipped = failed = 0
        # One short transaction per account (inside post_interest): a long batch never holds
        # more than one account's lock, and a failure leaves the other accounts posted.
        for account in Account.objects.filter(closed_at=None).order_by("pk").only("pk"):
            try:
                entry = account.post_interest(period, rate, by=system)
            except AccountError as error:  # busy, or a balance at its maximum
                failed += 1
                self.stderr.write(f"account {account.pk}: {error}")
                continue
            if entry is None:
                skipped += 1
            else:
                posted += 1
        self.stdout.write(
            f"Interest {period} at {rate:%} a year: posted to {posted} accounts, "
            f"{skipped} already posted or below a cent, {failed} failed."
        )
        if failed:
            raise CommandError(f"{failed} accounts could not be credited.")

    def _system_user(self):
        user, created = get_user_model().objects.get_or_create(
            username=SYSTEM_USERNAME, defaults={"email": SYSTEM_EMAIL, "is_active": False}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user
