"""Who wants which e-mails, and which were sent.

The ledger is the outbox: nothing is written next to an entry while its account is locked.
The worker reads each account's new entries past its `Cursor` (entries of one account commit
in `seq` order, because `seq` is taken under the account's row lock), and claims one
`Notification` row per (entry, recipient) before it sends anything. Approval requests made
and answered, and rule changes, are read the same way from their own rows, by the account
version each was stamped with under the lock (`Cursor.through_version`).
"""

from __future__ import annotations

import functools
import operator
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.formatting import money
from accounts.models import money_field


class Preference(models.Model):
    """A holder's choice for one account: e-mail me when another holder moves money. No row
    means the default, always."""

    class When(models.TextChoices):
        ALWAYS = "always", "Always"
        ABOVE = "above", "Above an amount"
        NEVER = "never", "Never"

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    when = models.CharField(max_length=10, choices=When.choices, default=When.ALWAYS)
    # With "above": only moves of more than this amount.
    above = money_field(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="one_preference_per_holder"),
            models.CheckConstraint(
                condition=(Q(when="above") & Q(above__gt=0)) | (~Q(when="above") & Q(above=None)),
                name="preference_amount_only_with_above",
            ),
        ]

    def __str__(self):
        return f"{self.user} on {self.account}: {self.when}"

    def wants(self, amount: Decimal) -> bool:
        if self.when == self.When.NEVER:
            return False
        return self.when == self.When.ALWAYS or amount > self.above

    @property
    def description(self) -> str:
        if self.when == self.When.ABOVE:
            return f"only above {money(self.above)}"
        return self.get_when_display().lower()

    @classmethod
    def for_holder(cls, account, user) -> Preference:
        return cls.objects.filter(account=account, user=user).first() or cls(
            account=account, user=user
        )


class Cursor(models.Model):
    """How far the worker has read an account's ledger: every entry up to `through_seq` has
    its notifications claimed. A missing row means none yet (a new account)."""

    account = models.OneToOneField(
        "accounts.Account",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notifications_cursor",
    )
    through_seq = models.PositiveBigIntegerField(default=0)
    # Every approval request made or answered, and every rule change, stamped with an account
    # version up to this one has its notifications claimed.
    through_version = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.account} through {self.through_seq}"


# What a notification can be about; exactly one of them is set.
THINGS = ("entry", "request_asked", "request_decided", "rule_change")
EXACTLY_ONE_THING = functools.reduce(
    operator.or_,
    (Q(**{f"{other}__isnull": other != thing for other in THINGS}) for thing in THINGS),
)


class Notification(models.Model):
    """One e-mail: one thing told to one recipient. The thing is exactly one of a ledger entry
    (a move), an approval request made (`request_asked`) or answered (`request_decided`), or
    a rule change. The unique (thing, recipient) row is the claim, committed before the e-mail
    is sent, so nothing reaches anyone twice.

    `started_at` is committed just before the SMTP exchange and `sent_at` right after it. A
    claim with neither is provably unsent, and is sent later; one started but not sent (the
    worker died during the exchange) may or may not have left: it is never sent again
    (at most once) and stays visible in the admin."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    entry = models.ForeignKey(
        "accounts.LedgerEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    request_asked = models.ForeignKey(
        "accounts.ApprovalRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    request_decided = models.ForeignKey(
        "accounts.ApprovalRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    rule_change = models.ForeignKey(
        "accounts.RuleChange", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    claimed_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entry", "recipient"], name="one_email_per_recipient"),
            models.UniqueConstraint(
                fields=["request_asked", "recipient"], name="one_request_email_per_recipient"
            ),
            models.UniqueConstraint(
                fields=["request_decided", "recipient"], name="one_outcome_email_per_recipient"
            ),
            models.UniqueConstraint(
                fields=["rule_change", "recipient"], name="one_rules_email_per_recipient"
            ),
            models.CheckConstraint(
                condition=EXACTLY_ONE_THING, name="notification_about_one_thing"
            ),
        ]
        indexes = [
            # The worker's "what is left to send on this account?"
            models.Index(
                fields=["account"], condition=Q(started_at=None), name="notification_unsent"
            ),
        ]

    def __str__(self):
        return f"{self.about} to {self.recipient}"

    @property
    def about(self):
        return self.entry or self.request_asked or self.request_decided or self.rule_change
