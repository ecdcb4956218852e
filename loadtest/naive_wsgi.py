"""The app with the naive read-modify-write in place of the locked balance change.

For `make bench` only: it measures what the lock costs on the full request path (sessions,
auth, CSRF, views and templates all identical) and shows the updates the naive version loses.
It is a separate WSGI module that no URL of the real app reaches; gunicorn serves it only when
the benchmark names it.
"""

from __future__ import annotations

from jointbank.wsgi import application  # sets Django up before the models are imported

# isort: split
from accounts.models import Account, LedgerEntry
from loadtest import race


def _naive_change_balance(self, kind, amount, by, by_staff=False, key=None, memo=""):
    delta = amount if kind in LedgerEntry.CREDITS else -amount
    entry = race.naive_change(self.pk, delta, by.pk)
    self.balance = entry.balance_after
    return entry


Account._change_balance = _naive_change_balance

__all__ = ["application"]
