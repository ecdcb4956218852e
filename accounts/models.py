import hashlib
import hmac
import secrets
from datetime import timedelta
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import dateformat, timezone

# The balance column holds up to 999,999,999,999.99.
BALANCE_DIGITS = 14
MAX_BALANCE = Decimal("999999999999.99")
CENT = Decimal("0.01")


class AccountError(Exception):
    """Something the rules of the account do not allow. Nothing was written."""


class MoneyError(AccountError):
    """A balance change that the rules of the account do not allow. Nothing was written."""


class InvalidAmount(MoneyError):
    pass


class InsufficientFunds(MoneyError):
    def __init__(self, balance: Decimal):
        self.balance = balance
        super().__init__(f"Insufficient funds: the balance is {balance}.")


class BalanceLimitExceeded(MoneyError):
    def __init__(self, balance: Decimal):
        self.balance = balance
        super().__init__(f"This deposit would take the balance above {MAX_BALANCE:,}.")


def money_field(**kwargs):
    return models.DecimalField(max_digits=BALANCE_DIGITS, decimal_places=2, **kwargs)


class AccountClosed(AccountError):
    def __init__(self, closed_at):
        self.closed_at = closed_at
        day = dateformat.format(timezone.localtime(closed_at), "M j, Y")
        super().__init__(
            f"This account was closed on {day} and is read-only: nothing can be deposited, "
            "withdrawn or shared any more."
        )


class NotAHolder(AccountError):
    def __init__(self):
        super().__init__("You do not hold this account.")


class AlreadyAHolder(AccountError):
    def __init__(self, email=None):
        who = email or "This person"
        super().__init__(f"{who} already holds this account.")


class AlreadyInvited(AccountError):
    def __init__(self, email):
        super().__init__(f"{email} already has a pending invitation to this account.")


class HolderLimitReached(AccountError):
    def __init__(self, limit):
        super().__init__(f"An account can have at most {limit} holders; this one is full.")


class LastHolder(AccountError):
    def __init__(self):
        super().__init__(
            "You are the only holder, so you cannot leave. Close the account instead "
            "(its balance must be 0.00 first)."
        )


class OtherHoldersRemain(AccountError):
    def __init__(self, emails):
        super().__init__(
            "Only the last holder can close an account; it is also held by "
            f"{', '.join(emails)}. They have to leave first."
        )


class BalanceNotZero(AccountError):
    def __init__(self, balance):
        self.balance = balance
        super().__init__(
            f"Only an account with a balance of 0.00 can be closed; this one holds {balance}. "
            "Withdraw it first."
        )


class InvitationNotPending(AccountError):
    WHAT_HAPPENED = {
        "accepted": "has already been accepted",
        "declined": "was declined",
        "revoked": "was withdrawn by a holder of the account",
        "expired": "has expired (invitations last 7 days)",
    }

    def __init__(self, state):
        self.state = state
        super().__init__(
            f"This invitation {self.WHAT_HAPPENED[state]}, so it cannot be used any more."
        )


class WrongInvitee(AccountError):
    def __init__(self, email):
        self.email = email
        super().__init__(
            f"This invitation was sent to {email}, which is not a verified address of the "
            "account you are signed in with."
        )


class AccountQuerySet(models.QuerySet):
    def held_by(self, user):
        """Accounts the user holds now: one filter() call, so both conditions apply to the
        same membership (a user who left and re-joined has two rows)."""
        return self.filter(memberships__user=user, memberships__left_at__isnull=True)


class Account(models.Model):
    name = models.CharField(max_length=100)
    balance = money_field(default=Decimal("0.00"))
    # Bumped by every balance change; the ETag of the polled balance fragment.
    version = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # Set once by the last holder (Account.close); a closed account is read-only.
    closed_at = models.DateTimeField(null=True, blank=True)
    # Everyone who ever held the account, former holders included; the current holders are
    # `memberships.current()` and `Account.objects.held_by(user)`.
    holders = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="joint_accounts"
    )

    objects = AccountQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0), name="account_balance_not_negative"
            ),
        ]

    def __str__(self):
        return self.name

    @classmethod
    def open(cls, name: str, *, by) -> "Account":
        """Open an account; its creator becomes the first holder."""
        with transaction.atomic():
            account = cls.objects.create(name=name)
            Membership.objects.create(account=account, user=by)
        return account

    def deposit(self, amount: Decimal, *, by, by_staff=False) -> "LedgerEntry":
        return self._change_balance(LedgerEntry.Kind.DEPOSIT, amount, by, by_staff)

    def withdraw(self, amount: Decimal, *, by, by_staff=False) -> "LedgerEntry":
        return self._change_balance(LedgerEntry.Kind.WITHDRAWAL, amount, by, by_staff)

    def _change_balance(self, kind: str, amount: Decimal, by, by_staff) -> "LedgerEntry":
        amount = _checked_amount(amount)
        with transaction.atomic():
            # Lock the row and re-read the balance under the lock: two holders acting at once
            # on different processes would otherwise both start from the same old balance and
            # one change would be lost. The lock is held until COMMIT, so keep this block short.
            locked = Account.objects.select_for_update(no_key=True).get(pk=self.pk)
            locked.check_can_write(by, by_staff=by_staff)
            if kind == LedgerEntry.Kind.DEPOSIT:
                new_balance = locked.balance + amount
                if new_balance > MAX_BALANCE:
                    raise BalanceLimitExceeded(locked.balance)
            else:
                new_balance = locked.balance - amount
                if new_balance < 0:
                    raise InsufficientFunds(locked.balance)
            locked.balance = new_balance
            locked.version += 1
            locked.save(update_fields=["balance", "version"])
            entry = LedgerEntry.objects.create(
                account=locked, kind=kind, amount=amount, balance_after=new_balance, created_by=by
            )
        self.balance, self.version = locked.balance, locked.version
        return entry

    # --- Sharing ---------------------------------------------------------------------------
    # Every change to who holds an account, like every balance change, first locks the
    # account row. So membership changes and balance changes on one account happen one at a
    # time, and a check made under the lock ("is this user still a holder?", "is it open?",
    # "is there room?") still holds when the transaction commits. The lock order is always
    # account, then its invitation or membership rows, so these paths cannot deadlock.

    def locked(self) -> "Account":
        """This account's row, locked until the current transaction ends."""
        return Account.objects.select_for_update(no_key=True).get(pk=self.pk)

    def check_can_write(self, by, *, by_staff=False) -> None:
        """Raise unless `by` may change this account now. Call it on the row locked in the
        current transaction, so that a holder who left or a close that committed a moment
        ago is seen. `by_staff`: staff in the admin (corrections), who need not hold it."""
        if self.closed_at is not None:
            raise AccountClosed(self.closed_at)
        if not by_staff and not self.memberships.current().filter(user=by).exists():
            raise NotAHolder()

    def check_can_add_holder(self, user) -> None:
        """Raise unless `user` can join now. Call it on the locked row."""
        if self.closed_at is not None:
            raise AccountClosed(self.closed_at)
        current = self.memberships.current()
        if current.filter(user=user).exists():
            raise AlreadyAHolder(getattr(user, "email", None))
        if current.count() >= settings.JOINTBANK_MAX_HOLDERS:
            raise HolderLimitReached(settings.JOINTBANK_MAX_HOLDERS)

    def invite(self, email: str, *, by) -> tuple["Invitation", str]:
        """Invite `email` to hold this account with `by`. Returns the invitation and its
        token; only the token's hash is stored, so the token exists only in the e-mail."""
        email = email.strip().lower()
        now = timezone.now()
        with transaction.atomic():
            locked = self.locked()
            locked.check_can_write(by)
            if locked.memberships.current().with_email(email).exists():
                raise AlreadyAHolder(email)
            # An expired invitation still "pending" in the table would block a new one.
            locked.invitations.filter(
                email=email, state=Invitation.State.PENDING, expires_at__lte=now
            ).update(state=Invitation.State.EXPIRED, answered_at=now)
            if locked.invitations.pending().filter(email=email).exists():
                raise AlreadyInvited(email)
            # Pending invitations count too: one that could not be accepted helps nobody.
            taken = locked.memberships.current().count() + locked.invitations.pending().count()
            if taken >= settings.JOINTBANK_MAX_HOLDERS:
                raise HolderLimitReached(settings.JOINTBANK_MAX_HOLDERS)
            token = secrets.token_urlsafe(32)
            invitation = Invitation.objects.create(
                account=locked,
                email=email,
                invited_by=by,
                token_hash=Invitation.hash_token(token),
                created_at=now,
                expires_at=now + Invitation.LIFETIME,
            )
        return invitation, token

    def revoke(self, invitation: "Invitation", *, by, by_staff=False) -> None:
        with transaction.atomic():
            locked = self.locked()
            locked.check_can_write(by, by_staff=by_staff)
            invitation = locked.invitations.select_for_update().get(pk=invitation.pk)
            invitation.answer(Invitation.State.REVOKED)

    def add_holder(self, user) -> "Membership":
        """Make `user` a holder (the admin's way in; holders use invitations)."""
        with transaction.atomic():
            locked = self.locked()
            locked.check_can_add_holder(user)
            return Membership.objects.create(account=locked, user=user)

    def leave(self, *, by) -> "Membership":
        """End `by`'s membership; someone else must still hold the account. The row stays,
        with `left_at`, so the account keeps a record of who held it when."""
        with transaction.atomic():
            locked = self.locked()
            if locked.closed_at is not None:
                raise AccountClosed(locked.closed_at)
            membership = locked.memberships.current().filter(user=by).first()
            if membership is None:
                raise NotAHolder()
            if not locked.memberships.current().exclude(pk=membership.pk).exists():
                raise LastHolder()
            membership.left_at = timezone.now()
            membership.save(update_fields=["left_at"])
        return membership

    def close(self, *, by) -> None:
        """Close the account for good: only its last holder, only at a balance of 0.00.
        The last holder stays a holder of the closed account and can still read it."""
        with transaction.atomic():
            locked = self.locked()
            locked.check_can_write(by)
            others = locked.memberships.current().exclude(user=by).select_related("user")
            if others:
                raise OtherHoldersRemain([membership.user.email for membership in others])
            if locked.balance != 0:
                raise BalanceNotZero(locked.balance)
            locked.closed_at = timezone.now()
            locked.save(update_fields=["closed_at"])
            locked.invitations.filter(state=Invitation.State.PENDING).update(
                state=Invitation.State.REVOKED, answered_at=locked.closed_at
            )
        self.closed_at = locked.closed_at


def _checked_amount(amount) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidAmount("The amount must be a finite Decimal.")
    if amount <= 0 or amount != amount.quantize(CENT):
        raise InvalidAmount("The amount must be positive with at most two decimals.")
    return amount.quantize(CENT)


class MembershipQuerySet(models.QuerySet):
    def current(self):
        return self.filter(left_at__isnull=True)

    def with_email(self, email: str):
        """Memberships of the user with this address, as login e-mail or as an allauth
        address (verified or not: an invitation to someone's second address is still them)."""
        addresses = EmailAddress.objects.filter(email__iexact=email).values("user_id")
        return self.filter(Q(user__email__iexact=email) | Q(user_id__in=addresses))


class Membership(models.Model):
    """One period in which a user holds an account: `left_at` is null while it lasts.

    Leaving sets `left_at` instead of deleting the row, and re-joining later adds a new row
    rather than reopening the old one, so every period stays on record (who held the account
    when). The partial unique constraint allows any number of past rows but only one current
    membership per user and account, which is also what makes a double accept impossible.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    joined_at = models.DateTimeField(default=timezone.now)
    left_at = models.DateTimeField(null=True, blank=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "user"],
                condition=Q(left_at__isnull=True),
                name="one_current_membership_per_holder",
            ),
            models.CheckConstraint(
                condition=Q(left_at__isnull=True) | Q(left_at__gte=models.F("joined_at")),
                name="membership_left_after_joining",
            ),
        ]

    def __str__(self):
        return f"{self.user} in {self.account}"


class InvitationQuerySet(models.QuerySet):
    def pending(self):
        """Pending and not yet expired. (Expiry is lazy: a pending row past `expires_at` is
        expired whatever its stored state says; it is marked so when someone touches it.)"""
        return self.filter(state=Invitation.State.PENDING, expires_at__gt=timezone.now())


class Invitation(models.Model):
    """An e-mailed offer to become a holder of an account, answerable once.

    The link carries the invitation's id and a random token; the table stores only the
    token's SHA-256. The id finds the row (it is no secret: without the token it is useless)
    and the hashes are then compared in constant time, so neither response times nor a copy
    of the database give away a working link.
    """

    LIFETIME = timedelta(days=7)

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        ACCEPTED = "accepted", "accepted"
        DECLINED = "declined", "declined"
        REVOKED = "revoked", "revoked"
        EXPIRED = "expired", "expired"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="invitations_sent"
    )
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    answered_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "email"],
                condition=Q(state="pending"),
                name="one_pending_invitation_per_address",
            ),
        ]

    def __str__(self):
        return f"{self.email} to {self.account}"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(self.token_hash, self.hash_token(token))

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def effective_state(self) -> str:
        if self.state == self.State.PENDING and self.is_expired:
            return self.State.EXPIRED
        return self.state

    def check_answerable_by(self, user) -> None:
        """Raise unless `user` can accept or decline this invitation now."""
        if self.effective_state != self.State.PENDING:
            raise InvitationNotPending(self.effective_state)
        if not EmailAddress.objects.filter(
            user=user, email__iexact=self.email, verified=True
        ).exists():
            raise WrongInvitee(self.email)

    def accept(self, user) -> Membership:
        """Make `user` a holder. Locks the account (room for one more holder is checked
        and taken in one step) and then this invitation (so it is used at most once)."""
        with transaction.atomic():
            account = self.account.locked()
            invitation = Invitation.objects.select_for_update().get(pk=self.pk)
            invitation.check_answerable_by(user)
            account.check_can_add_holder(user)
            try:
                with transaction.atomic():
                    membership = Membership.objects.create(account=account, user=user)
            except IntegrityError as error:  # the constraint, should a check ever miss it
                raise AlreadyAHolder(user.email) from error
            invitation.answer(self.State.ACCEPTED)
        self.state, self.answered_at = invitation.state, invitation.answered_at
        return membership

    def decline(self, user) -> None:
        with transaction.atomic():
            invitation = Invitation.objects.select_for_update().get(pk=self.pk)
            invitation.check_answerable_by(user)
            invitation.answer(self.State.DECLINED)
        self.state, self.answered_at = invitation.state, invitation.answered_at

    def answer(self, state: str) -> None:
        """Move a pending invitation to its final state. Call it on a locked row."""
        if self.effective_state != self.State.PENDING:
            raise InvitationNotPending(self.effective_state)
        self.state, self.answered_at = state, timezone.now()
        self.save(update_fields=["state", "answered_at"])

    def mark_if_expired(self) -> None:
        """Store the lazy expiry, so the admin and the table say what the link does."""
        if self.state == self.State.PENDING and self.is_expired:
            Invitation.objects.filter(pk=self.pk, state=self.State.PENDING).update(
                state=self.State.EXPIRED, answered_at=timezone.now()
            )
            self.state = self.State.EXPIRED


class LedgerEntry(models.Model):
    """One balance change. Append-only: nothing in the app updates or deletes a row."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        WITHDRAWAL = "withdrawal", "Withdrawal"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = money_field()
    balance_after = money_field()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_amount_positive"),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="ledger_balance_after_not_negative"
            ),
        ]
        # History pages read "newest first, before id X" for one account: this index answers
        # that with a short range scan however long the ledger grows.
        indexes = [
            models.Index(fields=["account", "-id"], name="ledger_account_newest"),
            # The balance chart's "last entry before the end of day D" (accounts/chart.py).
            models.Index(fields=["account", "created_at", "id"], name="ledger_account_time"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount} on {self.account}"

    @property
    def signed_amount(self) -> Decimal:
        return self.amount if self.kind == self.Kind.DEPOSIT else -self.amount
