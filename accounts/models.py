from decimal import Decimal

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

# The balance column holds up to 999,999,999,999.99.
BALANCE_DIGITS = 14
MAX_BALANCE = Decimal("999999999999.99")
CENT = Decimal("0.01")


class MoneyError(Exception):
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


class AccountQuerySet(models.QuerySet):
    def held_by(self, user):
        return self.filter(memberships__user=user)


class Account(models.Model):
    name = models.CharField(max_length=100)
    balance = money_field(default=Decimal("0.00"))
    # Bumped by every balance change; the ETag of the polled balance fragment.
    version = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
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

    def deposit(self, amount: Decimal, *, by) -> "LedgerEntry":
        return self._change_balance(LedgerEntry.Kind.DEPOSIT, amount, by)

    def withdraw(self, amount: Decimal, *, by) -> "LedgerEntry":
        return self._change_balance(LedgerEntry.Kind.WITHDRAWAL, amount, by)

    def _change_balance(self, kind: str, amount: Decimal, by) -> "LedgerEntry":
        amount = _checked_amount(amount)
        with transaction.atomic():
            # Lock the row and re-read the balance under the lock: two holders acting at once
            # on different processes would otherwise both start from the same old balance and
            # one change would be lost. The lock is held until COMMIT, so keep this block short.
            locked = Account.objects.select_for_update(no_key=True).get(pk=self.pk)
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


def _checked_amount(amount) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidAmount("The amount must be a finite Decimal.")
    if amount <= 0 or amount != amount.quantize(CENT):
        raise InvalidAmount("The amount must be positive with at most two decimals.")
    return amount.quantize(CENT)


class Membership(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="one_membership_per_holder"),
        ]

    def __str__(self):
        return f"{self.user} in {self.account}"


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
