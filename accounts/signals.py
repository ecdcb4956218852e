"""Signals the accounts app sends."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by Account._append for every new ledger entry (keywords `entry` and `account_id`),
# inside the entry's transaction with the account's row lock held: a receiver must not query
# or do I/O there, only register work for after COMMIT (notifications do: README,
# Notifications). The entry is written by raw SQL, so Django's post_save is not sent.
entry_appended = Signal()

# Sent (keyword `account_id`) when an approval request is made or answered, or the rules of
# an account change: inside that transaction, under the account's lock, like entry_appended
# (the same rule for receivers).
shared_control_changed = Signal()
