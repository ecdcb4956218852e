"""Shared control: the rules of an account and the requests that wait for another holder.

A withdrawal or transfer above the account's approval threshold, or beyond the holder's daily
limit, does not move money: it becomes a pending `ApprovalRequest` and a *hold* on the amount
(`Account.held`, so the available balance is `balance - held`). Another holder approves it
(the ledger entry is posted and the hold released, in one transaction) or rejects it; the
requester can cancel it; after `JOINTBANK_APPROVAL_TTL` it expires. Loosening a rule while
other holders exist is a request too, holding nothing.

Every state change happens under the account's row lock (`Account.lock()`) and is checked on
the row read under it, so an approval, a rejection, a cancellation and an expiry arriving at
the same instant leave exactly one final state, and money moves at most once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.text import capfirst

from profiles.models import display_name

from .errors import (
    NotYourRequest,
    OwnRequest,
    RequestNotPending,
)
from .formatting import clock, money

if TYPE_CHECKING:
    from .models import Account, LedgerEntry

# Requests answered this recently are still listed on the account page.
RECENT = timedelta(days=7)


def _money_field(**kwargs):
    # The same column as the balance (models.money_field); spelled out to avoid an import
    # cycle, since models.py imports this module.
    return models.DecimalField(max_digits=14, decimal_places=2, **kwargs)


class ApprovalRequestQuerySet(models.QuerySet):
    def pending(self):
        """Stored as pending (expired ones included until they are voided)."""
        return self.filter(state=ApprovalRequest.State.PENDING)

    def due(self, now: datetime | None = None):
        """Pending but past their expiry: to be voided."""
        return self.pending().filter(expires_at__lte=now or timezone.now())

    def listed(self, now: datetime | None = None):
        """The requests the account page lists: pending, or answered in the last 7 days."""
        now = now or timezone.now()
        return self.filter(Q(state=ApprovalRequest.State.PENDING) | Q(decided_at__gte=now - RECENT))

    def for_page(self, now: datetime | None = None):
        """What the account page lists: pending first (oldest first), then those answered in
        the last 7 days (newest first)."""
        pending_first = models.Case(
            models.When(state=ApprovalRequest.State.PENDING, then=0), default=1
        )
        return (
            self.listed(now)
            .select_related("requested_by__profile", "decided_by__profile", "target")
            .order_by(pending_first, "-decided_at", "created_at", "pk")
        )


class ApprovalRequest(models.Model):
    class Kind(models.TextChoices):
        WITHDRAWAL = "withdrawal", "Withdrawal"
        TRANSFER = "transfer", "Transfer"
        RULES = "rules", "Rules"

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        CANCELLED = "cancelled", "cancelled"
        EXPIRED = "expired", "expired"

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="approval_requests"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Withdrawals and transfers: the amount, held from the moment the request exists.
    amount = _money_field(null=True, blank=True)
    target = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Rules: which rule changes, and to what (None: off). A request changes only the rules it
    # loosens; tightening the other one in the same form applied at once.
    sets_threshold = models.BooleanField(default=False)
    new_threshold = _money_field(null=True, blank=True)
    sets_daily_limit = models.BooleanField(default=False)
    new_daily_limit = _money_field(null=True, blank=True)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_requests"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="approval_decisions",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    # What it is for, as the requester typed it (models.checked_memo); the posted entry gets it.
    memo = models.CharField(max_length=140, blank=True, default="")  # models.MEMO_MAX_LENGTH
    # The key of the form that asked: the same form sent twice makes one request.
    idempotency_key = models.UUIDField(null=True, blank=True)
    # The ledger entry posted when a withdrawal or transfer was approved (the transfer_out).
    entry = models.OneToOneField(
        "accounts.LedgerEntry",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="approval_request",
    )
    # The account's version once the request was made, and once it was answered (like a
    # ledger entry's `version`): the notification worker reads the requests made or answered
    # since it last looked by them, as it reads the ledger by `seq` (notifications/delivery.py).
    asked_version = models.PositiveBigIntegerField(null=True, blank=True)
    decided_version = models.PositiveBigIntegerField(null=True, blank=True)

    objects = ApprovalRequestQuerySet.as_manager()

    # Set on the request returned for a repeated idempotency key: it was made earlier.
    replayed = False
    # Why it needs approval, on a request just made ("above the $100.00 approval threshold").
    reason = ""

    class Meta:
        constraints = [
            # Key first: the index also answers "which request has this key?" alone.
            models.UniqueConstraint(
                fields=["idempotency_key", "account"], name="approval_one_request_per_key"
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="rules", amount__isnull=True, target__isnull=True)
                    | Q(kind="withdrawal", amount__gt=0, target__isnull=True)
                    | Q(kind="transfer", amount__gt=0, target__isnull=False)
                ),
                name="approval_kind_fields",
            ),
            models.CheckConstraint(
                condition=Q(state="pending", decided_at__isnull=True)
                | Q(~Q(state="pending"), decided_at__isnull=False),
                name="approval_decided_at_iff_final",
            ),
            models.CheckConstraint(
                condition=Q(entry__isnull=True) | Q(state="approved"),
                name="approval_entry_only_when_approved",
            ),
        ]
        indexes = [
            # The page's list and the holds of one account.
            models.Index(fields=["account", "state"], name="approval_account_state"),
            # The expiry job: pending requests by expiry time, whatever the account.
            models.Index(
                fields=["expires_at"], condition=Q(state="pending"), name="approval_pending_due"
            ),
            # The notification worker: what was asked or answered on one account since.
            models.Index(fields=["account", "asked_version"], name="approval_account_asked"),
            models.Index(fields=["account", "decided_version"], name="approval_account_decided"),
        ]

    def __str__(self):
        return f"{capfirst(self.asked())} ({self.state})"

    @property
    def hold(self) -> Decimal:
        """What this request keeps out of the available balance while it is pending."""
        return self.amount if self.kind != self.Kind.RULES else Decimal("0.00")

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def effective_state(self) -> str:
        """The state as the page shows it: a pending request past its expiry is expired even
        before the job or the next action on the account voids it."""
        if self.state == self.State.PENDING and self.is_expired:
            return self.State.EXPIRED
        return self.state

    def asked(self, *, where: bool = True) -> str:
        """What is asked, the one wording every page and e-mail builds on: 'withdraw $600.00
        from "Household"', 'transfer $20.00 from "Household" to "Savings"', 'change the rules
        of "Household" (approval threshold $1,000.00, daily limit off)'. `where=False` leaves
        this account out, for its own page: 'withdraw $600.00'."""
        account = f' of "{self.account.name}"' if where else ""
        if self.kind == self.Kind.RULES:
            return f"change the rules{account} ({self.rules_asked()})"
        source = f' from "{self.account.name}"' if where else ""
        if self.kind == self.Kind.TRANSFER:
            return f'transfer {money(self.amount)}{source} to "{self.target}"'
        return f"withdraw {money(self.amount)}{source}"

    def describe(self) -> str:
        """ "Withdraw $150.00", 'Transfer $20.00 to "Savings"', "Change the rules (approval
        threshold $1,000.00, daily limit off)": on the account's own page."""
        return capfirst(self.asked(where=False))

    def rules_asked(self) -> str:
        """ "approval threshold $1,000.00, daily limit off": the rules a rules request sets."""
        changes = []
        if self.sets_threshold:
            changes.append(f"approval threshold {_rule(self.new_threshold)}")
        if self.sets_daily_limit:
            changes.append(f"daily limit {_rule(self.new_daily_limit)}")
        return ", ".join(changes)

    def question(self) -> str:
        """ "Alice asks to withdraw $600.00 from "Household"", as the other holders read it
        (e-mails, Recent activity)."""
        return f"{display_name(self.requested_by)} asks to {self.asked()}"

    def outcome_for(self, reader_id: int) -> str:
        """ "Bob approved your request to withdraw …", "Alice's request to … expired without an
        answer": what became of a request, as the user `reader_id` reads it (e-mails, Recent
        activity)."""
        asked = f"request to {self.asked()}"
        requester = display_name(self.requested_by)
        whose = "your" if reader_id == self.requested_by_id else f"{requester}'s"
        if self.state == self.State.EXPIRED:
            # capfirst, not capitalize(): that would lowercase the rest of the name.
            return f"{capfirst(whose)} {asked} expired without an answer"
        if self.state == self.State.CANCELLED:
            return f"{requester} cancelled the {asked}"
        return f"{display_name(self.decided_by)} {self.state} {whose} {asked}"

    def outcome(self) -> str:
        """What became of it, as the requester reads it after asking."""
        if self.effective_state == self.State.PENDING:
            why = f" ({self.reason})" if self.reason else ""
            held = " The amount is held meanwhile." if self.hold else ""
            return f"waiting for another holder's approval{why}.{held}"
        if self.effective_state == self.State.EXPIRED:
            return "it expired without an answer; nothing was done."
        who = display_name(self.decided_by) if self.decided_by else "someone"
        return f"{self.state} by {who}."

    def check_decidable_by(self, user, *, approving: bool) -> None:
        """Raise unless `user` may approve (or reject) this request now: a holder other than
        the requester, while it is pending. Call it on the row read under the lock."""
        if self.requested_by_id == user.pk:
            raise OwnRequest(approving=approving)
        self.check_pending()

    def check_cancellable_by(self, user) -> None:
        if self.requested_by_id != user.pk:
            raise NotYourRequest()
        self.check_pending()

    def check_pending(self) -> None:
        if self.state != self.State.PENDING:
            raise RequestNotPending(self)

    def settle(
        self, locked: Account, state: str, by=None, entry: LedgerEntry | None = None
    ) -> None:
        """Give this pending request its final state. The caller holds the lock of `locked`
        (this request's account), read this row under it, releases the hold on the account
        row and bumps its version before COMMIT."""
        self.state, self.decided_by, self.decided_at, self.entry = state, by, timezone.now(), entry
        self.decided_version = locked.version + 1
        self.save(update_fields=["state", "decided_by", "decided_at", "entry", "decided_version"])


class RuleChange(models.Model):
    """The rules of an account as they changed: at once (a tightening, or any change by a
    sole holder) or when another holder approved a loosening (`approved_by`). Written under
    the account's lock in the transaction that changes them, so the other holders can be
    told (notifications) and the change is on record beside the account row."""

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="rule_changes"
    )
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    at = models.DateTimeField(default=timezone.now)
    # Both rules before and after (None: off); a rule that did not change has old == new.
    old_threshold = _money_field(null=True, blank=True)
    new_threshold = _money_field(null=True, blank=True)
    old_daily_limit = _money_field(null=True, blank=True)
    new_daily_limit = _money_field(null=True, blank=True)
    # The account's version once the change was made (as ApprovalRequest.asked_version).
    version = models.PositiveBigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["account", "version"], name="rule_change_account")]

    def __str__(self):
        # Each change already names the account.
        return capfirst("; ".join(self.changes()))

    def changes(self) -> list[str]:
        """Each rule that changed, as "lowered the approval threshold of "Household" from
        $500.00 to $200.00"."""
        rules = (
            ("approval threshold", self.old_threshold, self.new_threshold),
            ("daily limit", self.old_daily_limit, self.new_daily_limit),
        )
        return [
            _rule_change(f'the {rule} of "{self.account.name}"', old, new)
            for rule, old, new in rules
            if old != new
        ]


def _rule_change(rule: str, old: Decimal | None, new: Decimal | None) -> str:
    if old is None or new is None:
        done = f"turned off {rule}" if new is None else f"set {rule} to {_rule(new)}"
        return f"{done} (it was {_rule(old)})"
    verb = "lowered" if new < old else "raised"
    return f"{verb} {rule} from {money(old)} to {money(new)}"


def _rule(value: Decimal | None) -> str:
    return "off" if value is None else money(value)


def expiry_from(now: datetime) -> datetime:
    return now + settings.JOINTBANK_APPROVAL_TTL


def local_day_start(now: datetime) -> datetime:
    """Midnight of today in TIME_ZONE: daily limits count from there."""
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def spent_today(locked_account: Account, by, now: datetime) -> Decimal:
    """What `by` withdrew or transferred out of the account today without approval. One
    query on the ledger's `ledger_outgoing_by_holder` index; the caller holds the lock, so
    no outgoing entry of this account commits between this sum and the decision."""
    from .models import LedgerEntry

    total = LedgerEntry.objects.filter(
        account=locked_account,
        created_by=by,
        kind__in=LedgerEntry.DEBITS,
        approved_by__isnull=True,
        created_at__gte=local_day_start(now),
    ).aggregate(total=Sum("amount"))["total"]
    return total or Decimal("0.00")


def approval_reason(locked_account: Account, amount: Decimal, by, now: datetime) -> str | None:
    """Why `by` taking `amount` out of the locked account needs another holder's approval,
    or None. Rules bind only while someone else holds the account: alone, a holder could
    loosen them at once anyway, and nobody could approve."""
    threshold, limit = locked_account.approval_threshold, locked_account.daily_limit
    if threshold is None and limit is None:
        return None
    if not locked_account.memberships.current().exclude(user=by).exists():
        return None
    if threshold is not None and amount > threshold:
        return f"above the {money(threshold)} approval threshold"
    if limit is not None:
        spent = spent_today(locked_account, by, now)
        if spent + amount > limit:
            return (
                f"beyond your {money(limit)} daily limit ({money(spent)} already taken out today)"
            )
    return None


def loosens(old: Decimal | None, new: Decimal | None) -> bool:
    """Whether changing a rule from `old` to `new` allows more without approval: turning
    it off, or raising it. (None is off.)"""
    if new is None:
        return old is not None
    return old is not None and new > old


# How many of the newest entries the seen-balance guard reads to say what changed.
SEEN_WINDOW = 20


def what_happened(entry: LedgerEntry) -> str:
    """ "Bob withdrew $40.00 at 14:02" """
    verb = f"withdrew {money(entry.amount)}"
    if entry.kind == entry.Kind.TRANSFER_OUT:
        verb = f"transferred {money(entry.amount)} to {entry.counterparty}"
    return f"{display_name(entry.created_by)} {verb} at {clock(entry.created_at)}"
