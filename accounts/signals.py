"""Signals the accounts app sends."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by Account.lock() / lock_both() (keyword `account_id`) at the end of a locked block that
# changed the account: a ledger entry, an approval request made or answered, a rule change
# (each moves its `version`); once per account and block, however many it wrote. Inside the
# transaction with the row lock held: a receiver must not query or do I/O there, only register
# work for after COMMIT (notifications do: README, Notifications). Entries are written by raw
# SQL, so Django's post_save is not sent for them.
account_changed = Signal()
