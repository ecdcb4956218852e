"""Users and accounts for a load run, created through the app's own models.

    python -m loadtest.fixtures   (with DATABASE_URL set to the throwaway database)

Prints one JSON object: {"password": ..., "users": {email: [account ids]}, "accounts": [...]}.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from decimal import Decimal

PASSWORD = "load-test-pass-2024"  # a throwaway database, deleted on the next run
START_BALANCE = Decimal("50000.00")
YEAR = timedelta(days=365)
# Every user holds two of the three accounts, so every account has two holders acting at once.
ACCOUNTS = {
    "Household": ["alice@example.com", "bob@example.com"],
    "Alice & Carol": ["alice@example.com", "carol@example.com"],
    "Bob & Carol": ["bob@example.com", "carol@example.com"],
}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jointbank.settings")
    import django

    django.setup()
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.models import Account
    from tests.backdate import backdate

    users = {}
    for email in sorted({email for holders in ACCOUNTS.values() for email in holders}):
        user = get_user_model().objects.create_user(
            username=email.split("@")[0], email=email, password=PASSWORD
        )
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        users[email] = user
    held = {email: [] for email in users}
    accounts = []
    for name, holders in ACCOUNTS.items():
        account = Account.open(name, by=users[holders[0]])
        # Withdrawals above $500.00 wait for the other holder (the chaos run's "request"
        # operations); everything else the clients do stays below it.
        account.set_rules(Decimal("500.00"), None, by=users[holders[0]])
        for email in holders[1:]:
            account.memberships.create(user=users[email])
        opening = account.deposit(START_BALANCE, by=users[holders[0]])
        # Opened, with its money, a year ago: interest is earned on daily balances, so the
        # mid-run post_interest for last month has a whole month of them to credit.
        a_year_ago = timezone.now() - YEAR
        backdate(account, {opening.pk: a_year_ago})
        Account.objects.filter(pk=account.pk).update(created_at=a_year_ago)
        accounts.append(account.pk)
        for email in holders:
            held[email].append(account.pk)
    json.dump({"password": PASSWORD, "users": held, "accounts": accounts}, sys.stdout)


if __name__ == "__main__":
    main()


BENCH_EMAIL = "bench@example.com"
# The 1,000 accounts belong to their own user: every account page lists the user's other
# accounts as transfer targets, and nobody real holds a thousand.
SPREAD_EMAIL = "spread@example.com"
SPREAD_ACCOUNTS = 1000
HISTORY_SIZES = {"1k": 1_000, "100k": 100_000, "1M": 1_000_000}
BENCH_BALANCE = Decimal("1000000.00")
# The memo the filtered history page searches for (`?q=rent`), on every 40th entry.
FILTER_MEMO, RENT_EVERY = "rent", 40


def bench(full=True) -> None:
    """The benchmark's accounts: a hot one per hot row (locked, naive, bare, conditional,
    pgbench), 1,000 to spread the load over, and three whose ledgers hold 1k, 100k and 1M rows,
    bulk-loaded in SQL. Not `full`: only the users and the hot accounts (all that the lever
    comparisons use)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jointbank.settings")
    import django

    django.setup()
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from accounts.models import Account

    def make_user(email):
        user = get_user_model().objects.create_user(
            username=email.split("@")[0], email=email, password=PASSWORD
        )
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        return user

    user, spread_user = make_user(BENCH_EMAIL), make_user(SPREAD_EMAIL)

    def funded(name, by=user):
        account = Account.open(name, by=by)
        account.deposit(BENCH_BALANCE, by=by)
        return account.pk

    hot = {
        name: funded(f"hot ({name})")
        for name in ["locked", "naive", "bare", "conditional", "pgbench"]
    }
    spread = []
    with transaction.atomic():  # consecutive ids, so wrk can pick one with first + random(n)
        for n in range(SPREAD_ACCOUNTS if full else 0):
            spread.append(funded(f"spread {n}", by=spread_user))
    assert spread == list(range(spread[0], spread[0] + len(spread))) if spread else True, (
        "ids not consecutive"
    )
    histories = {}
    for label, rows in HISTORY_SIZES.items() if full else []:
        account = Account.open(f"history {label}", by=user)
        with connection.cursor() as cursor:
            # Not row by row through the ORM: one INSERT … SELECT of $1.00 deposits whose
            # seq and balance_after run 1, 2, 3…, then the balance and chain head they lead to.
            # Memos: "rent" on every 40th (the filtered page's search), "groceries" on every
            # 4th, none on the rest.
            # The hashes are placeholders (verify_ledger would reject these accounts): a valid
            # chain needs each entry's predecessor, i.e. a million sequential steps.
            cursor.execute(
                "INSERT INTO accounts_ledgerentry (account_id, seq, kind, amount, balance_after, "
                "created_by_id, created_at, hash, memo) "
                "SELECT %s, g, 'deposit', 1.00, g, %s, now() - make_interval(secs => %s - g), "
                "encode(sha256(convert_to(g::text, 'UTF8')), 'hex'), "
                f"CASE WHEN g %% {RENT_EVERY} = 0 THEN '{FILTER_MEMO}' "
                "WHEN g %% 4 = 0 THEN 'groceries' ELSE '' END "
                "FROM generate_series(1, %s) AS g",
                [account.pk, user.pk, rows, rows],
            )
            cursor.execute(
                "UPDATE accounts_account SET balance = %s, version = %s, last_seq = %s, "
                "last_hash = encode(sha256(convert_to(%s::text, 'UTF8')), 'hex') WHERE id = %s",
                [rows, rows, rows, rows, account.pk],
            )
            cursor.execute(
                "SELECT min(id), max(id) FROM accounts_ledgerentry WHERE account_id = %s",
                [account.pk],
            )
            low, high = cursor.fetchone()
        histories[label] = {"account": account.pk, "rows": rows, "middle": (low + high) // 2}
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    json.dump(
        {
            "email": BENCH_EMAIL,
            "spread_email": SPREAD_EMAIL,
            "password": PASSWORD,
            "user": user.pk,
            "spread_user": spread_user.pk,
            "hot": hot,
            "spread": [spread[0], SPREAD_ACCOUNTS] if spread else None,
            "history": histories,
        },
        sys.stdout,
    )
