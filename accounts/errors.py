"""What the rules of an account refuse. Each refusal words itself once (the pages and the
admin show the same message) and names the form field it is about (`field`, None for the
form as a whole). Nothing was written when one is raised."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from profiles.models import display_name

from .formatting import clock, day, moment, money

if TYPE_CHECKING:
    from .approvals import ApprovalRequest
    from .models import LedgerEntry


class AccountError(Exception):
    """Something the rules of the account do not allow. Nothing was written."""

    field: str | None = None


class MoneyError(AccountError):
    """A balance change that the rules of the account do not allow."""

    field = "amount"


class InvalidAmount(MoneyError):
    pass


class InvalidMemo(AccountError):
    """A memo the ledger does not take: too long, or with characters that would hide, reorder
    or break the text around it (jointbank/plain_text.py)."""

    field = "memo"


class InsufficientFunds(MoneyError):
    """More than the available balance: the balance less what pending requests hold."""

    def __init__(self, available: Decimal):
        self.available = available
        super().__init__(f"Insufficient funds: {money(available)} available.")


class BalanceLimitExceeded(MoneyError):
    def __init__(self, limit: Decimal, account_name: str | None = None):
        """`account_name`: the other account of a transfer, whose balance is the one at stake."""
        whose = f"the balance of {account_name}" if account_name else "the balance"
        super().__init__(f"This would take {whose} above {money(limit)}.")


class SameAccountTransfer(MoneyError):
    field = "to_account"

    def __init__(self) -> None:
        super().__init__("Choose another account: a transfer needs two different accounts.")


class AccountBusy(AccountError):
    """The row lock was not granted in time (or the transaction ran too long). Nothing was
    written; the same request, with the same idempotency key, can be sent again."""

    def __init__(self) -> None:
        super().__init__("This account is busy, please retry.")


class IdempotencyConflict(AccountError):
    """The idempotency key already belongs to a different operation, which was applied.

    `entry` is that operation when it was on the same account; a key used on another account
    is refused without a word about that account's operation, which the sender may not see.
    """

    def __init__(self, entry: LedgerEntry | None = None):
        self.entry = entry
        applied = ""
        if entry is not None:
            what = entry.get_kind_display().lower()
            applied = (
                f", which was applied ({what} of {money(entry.amount)}): check the transactions"
            )
        super().__init__(
            f"This form was already used for another operation{applied}. "
            "Send the form again to make this one a new operation."
        )


class AccountClosed(AccountError):
    def __init__(self, closed_at: datetime):
        self.closed_at = closed_at
        super().__init__(
            f"This account was closed on {day(closed_at)} and is read-only: nothing can be "
            "deposited, withdrawn or shared any more."
        )


class NotAHolder(AccountError):
    def __init__(self) -> None:
        super().__init__("You do not hold this account.")


class AlreadyAHolder(AccountError):
    field = "email"

    def __init__(self, email: str | None = None):
        super().__init__(f"{email or 'This person'} already holds this account.")


class AlreadyInvited(AccountError):
    field = "email"

    def __init__(self, email: str):
        super().__init__(f"{email} already has a pending invitation to this account.")


class HolderLimitReached(AccountError):
    def __init__(self, limit: int):
        super().__init__(f"An account can have at most {limit} holders; this one is full.")


class LastHolder(AccountError):
    def __init__(self) -> None:
        super().__init__(
            "You are the only holder, so you cannot leave. Close the account instead "
            f"(its balance must be {money(0)} first)."
        )


class OtherHoldersRemain(AccountError):
    def __init__(self, names: Iterable[str]):
        super().__init__(
            "Only the last holder can close an account; it is also held by "
            f"{', '.join(names)}. They have to leave first."
        )


class BalanceNotZero(AccountError):
    def __init__(self, balance: Decimal):
        self.balance = balance
        super().__init__(
            f"Only an account with a balance of {money(0)} can be closed; this one holds "
            f"{money(balance)}. Withdraw it first."
        )


class InvitationNotPending(AccountError):
    WHAT_HAPPENED = {
        "accepted": "has already been accepted",
        "declined": "was declined",
        "revoked": "was withdrawn by a holder of the account",
        "expired": "has expired (invitations last 7 days)",
    }

    def __init__(self, state: str):
        self.state = state
        super().__init__(
            f"This invitation {self.WHAT_HAPPENED[state]}, so it cannot be used any more."
        )


class WrongInvitee(AccountError):
    def __init__(self, email: str):
        self.email = email
        super().__init__(
            f"This invitation was sent to {email}, which is not a verified address of the "
            "account you are signed in with."
        )


class TooManyInvitations(AccountError):
    """An invitation over a rate limit: nothing was stored or sent. `retry_after`: seconds
    until one more is allowed (the Retry-After header)."""

    def __init__(self, reason: str, allowed_at: datetime, now: datetime):
        self.retry_after = max(1, math.ceil((allowed_at - now).total_seconds()))
        super().__init__(f"{reason} Try again after {moment(allowed_at)}.")


class HolderInvitationLimit(TooManyInvitations):
    def __init__(self, limit: int, allowed_at: datetime, now: datetime):
        super().__init__(
            f"You have sent {limit} invitations in the last hour, the most allowed.",
            allowed_at,
            now,
        )


class AddressInvitationLimit(TooManyInvitations):
    def __init__(self, email: str, limit: int, allowed_at: datetime, now: datetime):
        super().__init__(
            f"{email} has been sent {limit} invitations in the last 24 hours, the most allowed.",
            allowed_at,
            now,
        )


class AccountLimitReached(AccountError):
    def __init__(self, limit: int):
        super().__init__(
            f"You already hold {limit} open accounts, the most allowed. Close or leave one you "
            "no longer use to open another."
        )


# --- Shared control: approval requests ----------------------------------------------------


class RequestNotPending(AccountError):
    """The request was answered (or expired) before this: nothing was done now."""

    def __init__(self, request: ApprovalRequest):
        self.state = request.state
        who = display_name(request.decided_by) if request.decided_by else "someone"
        when = request.decided_at or request.expires_at
        if request.state == "expired":
            when = request.expires_at
            what = f"expired on {day(when)} at {clock(when)}"
        elif request.state == "approved":
            what = f"was already approved by {who} at {clock(when)}"
        else:
            what = f"was {request.state} by {who} at {clock(when)}"
        super().__init__(f"This request {what}: nothing more was done.")


class OwnRequest(AccountError):
    """Approving or rejecting one's own request: only another holder can."""

    def __init__(self, *, approving: bool):
        if approving:
            text = "You asked for this yourself: another holder has to approve it."
        else:
            text = "You asked for this yourself: cancel it instead of rejecting it."
        super().__init__(text)


class NotYourRequest(AccountError):
    def __init__(self) -> None:
        super().__init__(
            "Only the holder who asked can cancel a request; you can approve or reject it."
        )


class RequestsPending(AccountError):
    def __init__(self, count: int):
        requests = "request is" if count == 1 else "requests are"
        super().__init__(
            f"{count} {requests} still waiting for approval: approve, reject or cancel them "
            "before closing the account."
        )


class TransferTargetGone(AccountError):
    """An approved transfer whose receiving account can no longer take it."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"This transfer cannot be made any more: {name} {reason}. Reject it.")


class BalanceChangedSinceSeen(AccountError):
    """Another holder took money out after the balance the person saw (the form's
    `seen_version`): what changed, for them to confirm. `version` is the account's version
    now, which the confirming form sends back."""

    def __init__(self, changes: list[str], balance: Decimal, version: int):
        self.version = version
        super().__init__(
            f"{'; '.join(changes)} — the balance is now {money(balance)}. "
            "Send it again if you still want to."
        )
