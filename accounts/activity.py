"""The accounts page's "Recent activity": what other people did that concerns you, newest
first, from every account you hold now.

Each source is a function `(user, limit) -> list[Activity]`, at most `limit` items newest
first; `recent_activity` merges them (SOURCES).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.db import connection
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from profiles.models import display_name

from .approvals import ApprovalRequest
from .models import Account, Invitation, LedgerEntry

LIMIT = 20
# Each account's newest entries that are looked at for moves by others: a bound on the work
# for an account where you made the last thousand moves yourself.
SCAN_PER_ACCOUNT = 100

VERBS: dict[str, str] = {
    LedgerEntry.Kind.DEPOSIT: "deposited",
    LedgerEntry.Kind.WITHDRAWAL: "withdrew",
    LedgerEntry.Kind.TRANSFER_OUT: "transferred out",
    LedgerEntry.Kind.TRANSFER_IN: "transferred in",
}


@dataclass
class Activity:
    when: datetime
    kind: str  # "move", "invitation" or "request": the item's CSS class
    text: str
    url: str | None = None
    amount: Decimal | None = None  # signed: what it did to the balance
    memo: str = ""


def recent_activity(user, limit: int = LIMIT) -> list[Activity]:
    items = [item for source in SOURCES for item in source(user, limit)]
    return sorted(items, key=lambda item: item.when, reverse=True)[:limit]


def moves_by_others(user, limit: int) -> list[Activity]:
    """Entries made by someone else on the accounts `user` holds now: the other holders'
    deposits, withdrawals and transfers, and the bank's interest."""
    # Per account, a short backward scan of its (account, seq) index (ordered by id, an account
    # that holds most of the table could be read along the primary key, skipping other
    # accounts' newer rows); then the newest overall.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT recent.id FROM accounts_membership m
            CROSS JOIN LATERAL (
                SELECT e.id, e.created_by_id FROM accounts_ledgerentry e
                WHERE e.account_id = m.account_id ORDER BY e.seq DESC LIMIT %s
            ) recent
            WHERE m.user_id = %s AND m.left_at IS NULL AND recent.created_by_id <> %s
            ORDER BY recent.id DESC LIMIT %s
            """,
            [SCAN_PER_ACCOUNT, user.pk, user.pk, limit],
        )
        ids = [row[0] for row in cursor.fetchall()]
    entries = (
        LedgerEntry.objects.filter(pk__in=ids)
        .select_related("created_by__profile", "account", "counterparty")
        .order_by("-pk")
    )
    items = []
    for entry in entries:
        where = entry.account.name
        if entry.kind == LedgerEntry.Kind.INTEREST:
            text = f"Interest credited to {where}"
        else:
            text = f"{display_name(entry.created_by)} {VERBS.get(entry.kind, entry.kind)}"
            other = entry.counterparty.name if entry.counterparty else ""
            if entry.kind == LedgerEntry.Kind.TRANSFER_OUT:
                text += f" from {where} to {other}"
            elif entry.kind == LedgerEntry.Kind.TRANSFER_IN:
                text += f" to {where} from {other}"
            else:
                text += f" {'in' if entry.kind == LedgerEntry.Kind.DEPOSIT else 'from'} {where}"
        url = reverse("accounts:detail", args=[entry.account_id])
        items.append(Activity(entry.created_at, "move", text, url, entry.signed_amount, entry.memo))
    return items


def invitations(user, limit: int) -> list[Activity]:
    """Invitations to you (pending), and those other holders sent on your accounts, with
    their answers."""
    addresses = EmailAddress.objects.filter(user=user, verified=True).values("email")
    to_you = (
        Invitation.objects.pending()
        .filter(email__in=addresses)
        .select_related("invited_by__profile", "account")
        .order_by("-created_at")[:limit]
    )
    items = [
        Activity(
            invitation.created_at,
            "invitation",
            f"{display_name(invitation.invited_by)} invited you to hold {invitation.account.name}"
            f": open the link in the e-mail sent to {invitation.email} to answer",
        )
        for invitation in to_you
    ]
    sent = (
        Invitation.objects.filter(account__in=Account.objects.held_by(user))
        .exclude(invited_by=user)
        .select_related("invited_by__profile", "account")
        .order_by("-created_at")[:limit]
    )
    for invitation in sent:
        url = reverse("accounts:detail", args=[invitation.account_id])
        who, where = display_name(invitation.invited_by), invitation.account.name
        items.append(
            Activity(
                invitation.created_at,
                "invitation",
                f"{who} invited {invitation.email} to hold {where}",
                url,
            )
        )
        answered = invitation.answered_at
        if answered and invitation.state in (Invitation.State.ACCEPTED, Invitation.State.DECLINED):
            text = f"{invitation.email} {invitation.state} the invitation to {where}"
            items.append(Activity(answered, "invitation", text, url))
    return items


def requests(user, limit: int) -> list[Activity]:
    """Requests on the accounts you hold that wait for your answer (someone else's, pending,
    not expired), and what became of your own (approved, rejected or expired): one query."""
    State = ApprovalRequest.State
    waiting = Q(state=State.PENDING, expires_at__gt=timezone.now()) & ~Q(requested_by=user)
    yours = Q(requested_by=user, state__in=[State.APPROVED, State.REJECTED, State.EXPIRED])
    found = (
        ApprovalRequest.objects.filter(account__in=Account.objects.held_by(user))
        .filter(waiting | yours)
        .select_related("account", "target", "requested_by__profile", "decided_by__profile")
        .order_by(Coalesce("decided_at", "created_at").desc(), "-pk")[:limit]
    )
    items = []
    for request in found:
        url = reverse("accounts:detail", args=[request.account_id])
        if request.state == State.PENDING:
            text = f"{request.question()}: approve or reject it"
            items.append(Activity(request.created_at, "request", text, url, memo=request.memo))
            continue
        assert request.decided_at is not None  # approval_decided_at_iff_final
        text = request.outcome_for(user.pk)
        items.append(Activity(request.decided_at, "request", text, url, memo=request.memo))
    return items


SOURCES = [moves_by_others, invitations, requests]
