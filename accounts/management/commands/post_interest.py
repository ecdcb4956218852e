from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.errors import AccountError
from accounts.interest import BadPeriod, Month
from accounts.models import Account

# Interest is posted by the bank, not a holder; the ledger's "who" is this inactive user.
SYSTEM_USERNAME = "jointbank-interest"
SYSTEM_EMAIL = "interest@jointbank.invalid"


class Command(BaseCommand):
    help = (
        "Credit every account the interest it earned in one month, at most once per account "
        "and month: safe to re-run, to run twice at once (e.g. from cron) and to catch up on "
        "months that were missed. Actual/365: the sum, over the month's days, of that day's "
        "closing balance (at midnight, TIME_ZONE) x JOINTBANK_INTEREST_RATE / 365, rounded "
        "half-even to the cent once, at the end; days at whose end the account was not open "
        "(before it was opened, after it was closed) count zero, and $0.00 is not posted. "
        "Example: $1,000.00 from the 5th of a 30-day month at 0.02 a year earns "
        "26 x 1,000.00 x 0.02 / 365 = 1.4246... = $1.42, whatever is deposited after the month "
        "ended. A month that has not ended is refused (exit status 1)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--period",
            help="the month, YYYY-MM (default: the last month that has ended, in TIME_ZONE)",
        )

    def handle(self, *args, period=None, **options):
        try:
            month = Month.parse(period) if period is not None else Month.last_ended()
            month.check_ended()
        except BadPeriod as error:
            raise CommandError(str(error)) from error
        period = str(month)
        rate = settings.JOINTBANK_INTEREST_RATE
        system = self._system_user()
        posted = skipped = failed = 0
        # The accounts open at some point of the month (post_interest decides day by day).
        # One short transaction per account (inside post_interest): a long batch never holds
        # more than one account's lock, and a failure leaves the other accounts posted.
        accounts = (
            Account.objects.filter(created_at__lt=month.end)
            .exclude(closed_at__lte=month.start)
            .order_by("pk")
            .only("pk")
        )
        for account in accounts:
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
