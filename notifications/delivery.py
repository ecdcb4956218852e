"""The worker's side of notifications: claim, then send, each step in its own transaction.

1. `claim_new_entries`: under the account's `Cursor` row lock (never the account's own lock,
   so a deposit is never kept waiting by the worker), read the entries past the cursor,
   insert one `Notification` per (entry, recipient) and move the cursor, in one commit.
   `claim_new_events` does the same for approval requests made and answered and for rule
   changes, by the account version they were stamped with.
2. `send_claimed`: for each claim not yet started, commit `started_at`, send, commit
   `sent_at`. Several workers may do this at once: SKIP LOCKED gives each claim to one.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime

from django.core.mail import get_connection
from django.db import transaction
from django.utils import timezone

from accounts.approvals import ApprovalRequest, RuleChange
from accounts.models import Account, LedgerEntry, Membership

from .messages import message_for
from .models import Cursor, Notification, Preference

log = logging.getLogger(__name__)

# Entries claimed per transaction: a burst of moves becomes a few short transactions.
BATCH = 100
# Interest is credited by the bank, not moved by a holder.
SILENT_KINDS = {LedgerEntry.Kind.INTEREST}
# The server answered with a refusal: the message surely did not leave, so it may be retried.
REFUSED = (smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)


def deliver(account_id: int) -> int:
    """Claim and send what is due on one account; the number of e-mails sent."""
    while claim_new_entries(account_id) == BATCH:
        pass
    claim_new_events(account_id)
    return send_claimed(account_id)


def _locked_cursor(account_id: int) -> Cursor:
    """The account's cursor, made if missing, locked until the transaction ends: one worker
    at a time claims on one account."""
    Cursor.objects.bulk_create([Cursor(account_id=account_id)], ignore_conflicts=True)
    return Cursor.objects.select_for_update().get(account_id=account_id)


def claim_new_entries(account_id: int) -> int:
    """Claim the notifications of up to BATCH entries past the cursor; how many entries."""
    with transaction.atomic():
        cursor = _locked_cursor(account_id)
        entries = list(
            LedgerEntry.objects.filter(account_id=account_id, seq__gt=cursor.through_seq)
            .order_by("seq")
            .only(
                "pk",
                "seq",
                "kind",
                "amount",
                "created_by",
                "approved_by",
                "created_at",
                "counterparty",
            )[:BATCH]
        )
        if not entries:
            return 0
        holders = _Holders()
        preferences = {
            preference.user_id: preference
            for preference in Preference.objects.filter(account_id=account_id)
        }
        claims = [
            Notification(account_id=account_id, entry=entry, recipient_id=user_id)
            for entry in entries
            for user_id in _recipients(account_id, entry, holders, preferences)
        ]
        Notification.objects.bulk_create(claims, ignore_conflicts=True)
        cursor.through_seq = entries[-1].seq
        cursor.save(update_fields=["through_seq"])
    return len(entries)


def _recipients(
    account_id: int, entry: LedgerEntry, holders: _Holders, preferences: dict[int, Preference]
) -> list[int]:
    """Who hears of `entry`: the holders of its account when it was made, except whoever made
    it, whoever approved it (they just did) and those whose preference says no. The incoming
    half of a transfer is not sent to someone who held the sending account too: that
    transfer's other e-mail tells them."""
    if entry.kind in SILENT_KINDS:
        return []
    told = holders.at(account_id, entry.created_at) - {entry.created_by_id, entry.approved_by_id}
    if entry.kind == LedgerEntry.Kind.TRANSFER_IN and entry.counterparty_id is not None:
        told -= holders.at(entry.counterparty_id, entry.created_at)
    return sorted(
        user_id
        for user_id in told
        if user_id not in preferences or preferences[user_id].wants(entry.amount)
    )


class _Holders:
    """Who held an account at a moment, from its membership periods read once per claim
    transaction: a burst of entries or requests costs one query per account, not one each."""

    def __init__(self) -> None:
        self._periods: dict[int, list[tuple[int, datetime, datetime | None]]] = {}

    def at(self, account_id: int, moment: datetime) -> set[int]:
        if account_id not in self._periods:
            periods = Membership.objects.filter(account_id=account_id)
            self._periods[account_id] = list(periods.values_list("user_id", "joined_at", "left_at"))
        return {
            user_id
            for user_id, joined_at, left_at in self._periods[account_id]
            if joined_at <= moment and (left_at is None or left_at > moment)
        }


def claim_new_events(account_id: int) -> int:
    """Claim the e-mails about the approval requests made or answered and the rule changes
    of the account since the cursor's `through_version`; how many e-mails.

    Each was stamped under the account's lock with the account version its transaction
    committed (or one before it, never one after), and an account's versions commit in
    order. So once version V is read as committed, everything stamped up to V is visible
    to the queries that follow, and the cursor moves to V, never past something unread.
    These are always sent: the move preferences do not apply."""
    with transaction.atomic():
        cursor = _locked_cursor(account_id)
        since = cursor.through_version
        now = Account.objects.filter(pk=account_id).values_list("version", flat=True).get()
        if now <= since:
            return 0
        requests = ApprovalRequest.objects.filter(account_id=account_id)
        # A request already answered by `now` asks nothing any more: its outcome, claimed
        # below in this same transaction (decided_version > asked_version > since), or the
        # move or rule change it made tells the holders.
        asked = requests.filter(asked_version__gt=since, asked_version__lte=now).exclude(
            decided_version__lte=now
        )
        decided = requests.filter(decided_version__gt=since, decided_version__lte=now)
        changes = RuleChange.objects.filter(
            account_id=account_id, version__gt=since, version__lte=now
        )
        holders = _Holders()
        claims = [
            Notification(account_id=account_id, request_asked=request, recipient_id=user_id)
            for request in asked
            for user_id in _asked_of(request, holders)
        ]
        claims += [
            Notification(account_id=account_id, request_decided=request, recipient_id=user_id)
            for request in decided
            for user_id in _told_the_outcome(request, holders)
        ]
        claims += [
            Notification(account_id=account_id, rule_change=change, recipient_id=user_id)
            for change in changes
            for user_id in sorted(holders.at(account_id, change.at))
            if user_id not in (change.by_id, change.approved_by_id)
        ]
        Notification.objects.bulk_create(claims, ignore_conflicts=True)
        cursor.through_version = now
        cursor.save(update_fields=["through_version"])
    return len(claims)


def _asked_of(request: ApprovalRequest, holders: _Holders) -> list[int]:
    """Every other holder when it was made: any of them may answer it."""
    return sorted(holders.at(request.account_id, request.created_at) - {request.requested_by_id})


def _told_the_outcome(request: ApprovalRequest, holders: _Holders) -> list[int]:
    """The holders when it was answered, except whoever answered it (cancelling is the
    requester's answer). An approved request tells only its requester: the other holders
    hear of what it did through the move's or the rule change's own e-mail."""
    assert request.decided_at is not None  # approval_decided_at_iff_final
    then = holders.at(request.account_id, request.decided_at)
    if request.state == ApprovalRequest.State.APPROVED:
        return sorted(then & {request.requested_by_id})
    return sorted(then - {request.decided_by_id})


def send_claimed(account_id: int) -> int:
    sent = 0
    with get_connection(fail_silently=False) as smtp:
        while (claim := _start_next(account_id)) is not None:
            try:
                smtp.send_messages([message_for(claim)])
            except REFUSED as error:
                if not _temporary(error):
                    # Refused for good (no such mailbox): left started and unsent, logged.
                    log.error("Notification %s refused by the mail server: %s", claim.pk, error)
                    continue
                # Refused for now: surely not sent, so it goes again when the job is retried.
                Notification.objects.filter(pk=claim.pk).update(started_at=None)
                raise
            Notification.objects.filter(pk=claim.pk).update(sent_at=timezone.now())
            sent += 1
    return sent


def _temporary(error: smtplib.SMTPException) -> bool:
    """A 4xx answer (try again later), as opposed to a 5xx (never)."""
    if isinstance(error, smtplib.SMTPResponseException):
        codes = [error.smtp_code]
    else:  # SMTPRecipientsRefused: an answer per recipient
        codes = [code for code, _ in getattr(error, "recipients", {}).values()]
    return all(400 <= code < 500 for code in codes)


def _start_next(account_id: int) -> Notification | None:
    """The next unsent claim of the account, its start committed."""
    with transaction.atomic():
        claim = (
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(account_id=account_id, started_at=None)
            .select_related("entry__account", "entry__created_by__profile")
            .select_related("entry__counterparty", "entry__approved_by__profile")
            .select_related("request_asked__account", "request_asked__requested_by__profile")
            .select_related("request_asked__target", "request_decided__account")
            .select_related("request_decided__requested_by__profile", "request_decided__target")
            .select_related("request_decided__decided_by__profile", "rule_change__account")
            .select_related("rule_change__by__profile", "rule_change__approved_by__profile")
            .select_related("recipient__profile")
            .order_by("pk")
            .first()
        )
        if claim is None:
            return None
        # Committed before the send: from here on, a crash leaves this claim "started,
        # not sent", which is never sent again (it may have left).
        claim.started_at = timezone.now()
        claim.save(update_fields=["started_at"])
    return claim
