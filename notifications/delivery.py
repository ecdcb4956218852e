"""The worker's side of notifications: claim, then send, each step in its own transaction.

1. `claim_new_entries`: under the account's `Cursor` row lock (never the account's own lock,
   so a deposit is never kept waiting by the worker), read the entries past the cursor,
   insert one `Notification` per (entry, recipient) and move the cursor, in one commit.
2. `send_claimed`: for each claim not yet started, commit `started_at`, send, commit
   `sent_at`. Several workers may do this at once: SKIP LOCKED gives each claim to one.
"""

from __future__ import annotations

import logging
import smtplib
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.formatting import money
from accounts.models import LedgerEntry, Membership
from profiles.models import display_name

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
    return send_claimed(account_id)


def claim_new_entries(account_id: int) -> int:
    """Claim the notifications of up to BATCH entries past the cursor; how many entries."""
    with transaction.atomic():
        Cursor.objects.bulk_create([Cursor(account_id=account_id)], ignore_conflicts=True)
        cursor = Cursor.objects.select_for_update().get(account_id=account_id)
        entries = list(
            LedgerEntry.objects.filter(account_id=account_id, seq__gt=cursor.through_seq)
            .order_by("seq")
            .only("pk", "seq", "kind", "amount", "created_by", "created_at", "counterparty")[:BATCH]
        )
        if not entries:
            return 0
        claims = [
            Notification(account_id=account_id, entry=entry, recipient_id=user_id)
            for entry in entries
            for user_id in _recipients(account_id, entry)
        ]
        Notification.objects.bulk_create(claims, ignore_conflicts=True)
        cursor.through_seq = entries[-1].seq
        cursor.save(update_fields=["through_seq"])
    return len(entries)


def _recipients(account_id: int, entry: LedgerEntry) -> list[int]:
    """Who hears of `entry`: the holders of its account when it was made, except whoever made
    it and those whose preference says no. The incoming half of a transfer is not sent to
    someone who held the sending account too: that transfer's other e-mail tells them."""
    if entry.kind in SILENT_KINDS:
        return []
    holders = set(_holders_at(account_id, entry.created_at)) - {entry.created_by_id}
    if entry.kind == LedgerEntry.Kind.TRANSFER_IN:
        holders -= set(_holders_at(entry.counterparty_id, entry.created_at))
    preferences = {
        preference.user_id: preference
        for preference in Preference.objects.filter(account_id=account_id, user_id__in=holders)
    }
    return sorted(
        user_id
        for user_id in holders
        if user_id not in preferences or preferences[user_id].wants(entry.amount)
    )


def _holders_at(account_id, moment) -> list[int]:
    periods = Membership.objects.filter(account_id=account_id, joined_at__lte=moment)
    return list(periods.exclude(left_at__lte=moment).values_list("user_id", flat=True).distinct())


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
            .select_related("entry__counterparty", "recipient__profile")
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


def message_for(claim: Notification) -> EmailMessage:
    entry = claim.entry
    link = settings.JOINTBANK_SITE_URL + reverse("accounts:detail", args=[entry.account_id])
    context = {
        "entry": entry,
        "what": what_happened(entry),
        "recipient": display_name(claim.recipient),
        "link": link,
    }
    # One line whatever the account's name holds: a header with a newline is refused.
    subject = " ".join(render_to_string("notifications/move_subject.txt", context).split())
    body = render_to_string("notifications/move_message.txt", context)
    # The same (entry, recipient) always has the same Message-ID: mail clients and support
    # can tell one notification from another, and tests count deliveries per entry.
    message_id = f"<entry-{entry.pk}.to-{claim.recipient_id}@{urlsplit(link).hostname}>"
    return EmailMessage(
        subject, body, None, [claim.recipient.email], headers={"Message-ID": message_id}
    )


def what_happened(entry: LedgerEntry) -> str:
    """ "Alice withdrew $10.00 from "Household"", as the other holders read it."""
    who, amount = display_name(entry.created_by), money(entry.amount)
    account, other = f'"{entry.account.name}"', f'"{entry.counterparty}"'
    sentences: dict[str, str] = {
        LedgerEntry.Kind.DEPOSIT: f"{who} deposited {amount} into {account}",
        LedgerEntry.Kind.WITHDRAWAL: f"{who} withdrew {amount} from {account}",
        LedgerEntry.Kind.TRANSFER_OUT: f"{who} transferred {amount} from {account} to {other}",
        LedgerEntry.Kind.TRANSFER_IN: f"{who} transferred {amount} into {account} from {other}",
    }
    return sentences.get(entry.kind, f"{who}: {entry.get_kind_display()} of {amount} on {account}")
