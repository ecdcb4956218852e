"""Users and accounts for a load run, created through the app's own models.

    python -m loadtest.fixtures   (with DATABASE_URL set to the throwaway database)

Prints one JSON object: {"password": ..., "users": {email: [account ids]}, "accounts": [...]}.
"""

import json
import os
import sys
from decimal import Decimal

PASSWORD = "load-test-pass-2024"  # noqa: S105 - a throwaway database, deleted on the next run
START_BALANCE = Decimal("50000.00")
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

    from accounts.models import Account

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
        for email in holders[1:]:
            account.memberships.create(user=users[email])
        account.deposit(START_BALANCE, by=users[holders[0]])
        accounts.append(account.pk)
        for email in holders:
            held[email].append(account.pk)
    json.dump({"password": PASSWORD, "users": held, "accounts": accounts}, sys.stdout)


if __name__ == "__main__":
    main()
