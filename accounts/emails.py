"""E-mails the app sends. Each is called after the transaction that caused it commits
(`transaction.on_commit`): never from inside a row lock, and never for a change that was
rolled back."""

from __future__ import annotations

from django.core.mail import send_mail
from django.template.loader import render_to_string

from .models import Invitation


def send_invitation(invitation: Invitation, link: str) -> None:
    context = {"invitation": invitation, "link": link}
    # One line whatever the account's name holds: a header with a newline is refused.
    subject = " ".join(render_to_string("accounts/email/invitation_subject.txt", context).split())
    body = render_to_string("accounts/email/invitation_message.txt", context)
    send_mail(subject, body, None, [invitation.email])
