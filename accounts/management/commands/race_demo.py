from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.formatting import money
from accounts.models import Account
from loadtest.race import interleave, race

STORY_START = Decimal("1000.00")
RACE_START = Decimal("100000.00")


class Command(BaseCommand):
    help = (
        "Show the lost update live: two interleaved connections, then N OS processes hammering "
        "one account, each with the naive read-modify-write and with the app's locked methods. "
        "It writes throwaway accounts (and, for the naive runs, deliberately corrupt ones)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--processes", type=int, default=4, help="OS processes (default 4)")
        parser.add_argument("--ops", type=int, default=200, help="changes per process")
        parser.add_argument("--force", action="store_true", help="run even with DEBUG off")

    def handle(self, *args, processes, ops, force, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "Refusing to write demo accounts (some deliberately wrong) with DEBUG off "
                "(use --force on a throwaway database)."
            )
        if not (1 <= processes <= 64 and 1 <= ops <= 100_000):
            raise CommandError("--processes must be 1..64 and --ops 1..100000.")
        user = self._demo_user()

        self.stdout.write(
            f"Two holders share an account holding {money(STORY_START)}. At the same moment "
            f"A deposits $100.00 and B withdraws $100.00: it should end at {money(STORY_START)}."
        )
        for strategy, title in [
            ("naive", "naive: read the balance, compute, write it back"),
            ("locked", "locked: SELECT … FOR UPDATE, as Account.deposit/withdraw do"),
        ]:
            account = self._account(f"race demo: two clients, {strategy}", STORY_START, user)
            self.stdout.write(f"\n{title}")
            final = interleave(
                account.pk, user.pk, strategy, lambda line: self.stdout.write(f"  {line}")
            )
            lost = STORY_START - final
            verdict = f"{money(lost)} lost" if lost else "nothing lost"
            self.stdout.write(self._style(lost)(f"  final balance {money(final)}: {verdict}"))

        self.stdout.write(
            f"\n{processes} OS processes × {ops} random deposits/withdrawals on one account, "
            "released together by a barrier:\n"
        )
        self.stdout.write(
            f"{'strategy':<9}{'changes':>9}{'expected':>16}{'actual':>16}{'lost':>13}"
            f"{'ledger Σ':>16}{'changes/s':>11}"
        )
        for strategy in ["naive", "locked"]:
            account = self._account(
                f"race demo: {processes} processes, {strategy}", RACE_START, user
            )
            self.stdout.flush()  # before fork, so the children do not inherit buffered output
            result = race(account, user, strategy, processes=processes, ops=ops)
            line = (
                f"{strategy:<9}{result.operations:>9}{money(result.expected):>16}"
                f"{money(result.actual):>16}{money(result.lost):>13}{money(result.ledger):>16}"
                f"{result.per_second:>11.0f}"
            )
            self.stdout.write(self._style(result.lost or result.ledger != result.actual)(line))
        self.stdout.write(
            "\nexpected = start + every change that reported success; lost = expected − actual;"
            "\nledger Σ = the signed sum of the account's ledger rows, which the naive strategy "
            "lets drift from the balance too."
        )

    def _style(self, bad):
        return self.style.ERROR if bad else self.style.SUCCESS

    def _demo_user(self):
        """A new inactive user for each run: a run opens four throwaway accounts, and one user
        may hold only JOINTBANK_MAX_ACCOUNTS_PER_USER open ones (the naive strategy's accounts
        cannot be emptied and closed reliably: that is the point of them)."""
        user = get_user_model()(
            username=f"race-demo-{secrets.token_hex(4)}",
            email="race-demo@jointbank.invalid",
            is_active=False,
        )
        user.set_unusable_password()
        user.save()
        return user

    def _account(self, name, balance, user):
        account = Account.open(name, by=user)
        account.deposit(balance, by=user)
        return account
