"""Who wants which e-mails, and which were sent.

The ledger is the outbox: nothing is written next to an entry while its account is locked.
The worker reads each account's new entries past its `Cursor` (entries of one account commit
in `seq` order, because `seq` is taken under the account's row lock), and claims one
`Notification` row per (entry, recipient) before it sends anything.
"""

from __future__ import annotations

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

    def __str__(self):
        return f"{self.account} through {self.through_seq}"


class Notification(models.Model):
    """One e-mail: an entry told to one recipient. The unique (entry, recipient) row is the
    claim, committed before the e-mail is sent, so no entry reaches anyone twice.

    `started_at` is committed just before the SMTP exchange and `sent_at` right after it. A
    claim with neither is provably unsent, and is sent later; one started but not sent (the
    worker died during the exchange) may or may not have left: it is never sent again
    (at most once) and stays visible in the admin."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    entry = models.ForeignKey("accounts.LedgerEntry", on_delete=models.PROTECT, related_name="+")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    claimed_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entry", "recipient"], name="one_email_per_recipient"),
        ]
        indexes = [
            # The worker's "what is left to send on this account?"
            models.Index(
                fields=["account"], condition=Q(started_at=None), name="notification_unsent"
            ),
        ]

    def __str__(self):
        return f"{self.entry} to {self.recipient}"
