"""What each notification e-mail says: a move, an approval request made or answered, a rule
change. People appear by their display names; the address is only the envelope's."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.approvals import ApprovalRequest, RuleChange
from accounts.formatting import money
from accounts.models import LedgerEntry
from profiles.models import display_name

from .models import Notification


def message_for(claim: Notification) -> EmailMessage:
    thing: LedgerEntry | ApprovalRequest | RuleChange
    context: dict[str, object]
    if (entry := claim.entry) is not None:
        thing, tag, template = entry, "entry", "move"
        context = {"entry": entry, "what": what_happened(entry)}
    elif (asked := claim.request_asked) is not None:
        thing, tag, template = asked, "request", "request"
        context = {"request": asked, "what": asked.question()}
    elif (decided := claim.request_decided) is not None:
        thing, tag, template = decided, "outcome", "outcome"
        context = {"request": decided, "what": decided.outcome_for(claim.recipient_id)}
    else:
        change = claim.rule_change
        assert change is not None  # notification_about_one_thing
        thing, tag, template = change, "rule-change", "rules"
        context = {"change": change, "what": rules_changed(change)}
    account = thing.account
    link = settings.JOINTBANK_SITE_URL + reverse("accounts:detail", args=[account.pk])
    context |= {"account": account, "recipient": display_name(claim.recipient), "link": link}
    # One line whatever the account's name holds: a header with a newline is refused.
    subject = " ".join(render_to_string("notifications/subject.txt", context).split())
    body = render_to_string(f"notifications/{template}_message.txt", context)
    # The same (thing, recipient) always has the same Message-ID: mail clients and support
    # can tell one notification from another, and tests count deliveries per thing.
    message_id = f"<{tag}-{thing.pk}.to-{claim.recipient_id}@{urlsplit(link).hostname}>"
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


def rules_changed(change: RuleChange) -> str:
    """ "Alice lowered the approval threshold of "Household" from $500.00 to $200.00" (and
    the other rule's change after "and", when both changed)."""
    return f"{display_name(change.by)} {' and '.join(change.changes())}"
