from __future__ import annotations

import re
import unicodedata
import uuid
from decimal import Decimal

from allauth.account import forms as allauth_forms
from django import forms
from django.contrib.auth.hashers import make_password

from .errors import InvalidMemo
from .models import CENT, MEMO_MAX_LENGTH, checked_memo

MIN_AMOUNT = CENT
MAX_AMOUNT = Decimal("1000000.00")
# ASCII digits only (\d would accept Arabic-Indic and other digits), an optional point and at
# most two decimals: no signs, exponents, separators, NaN or Infinity.
PLAIN_DECIMAL = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
AMOUNT_RULES = (
    "Enter an amount like 125.50: digits with an optional point and at most two decimals, "
    "from 0.01 to 1,000,000.00."
)


def _amount(raw: str, rules: str) -> Decimal:
    """`raw` as an amount in cents from MIN_AMOUNT to MAX_AMOUNT; else `rules`, the message
    that says what is accepted."""
    if not PLAIN_DECIMAL.fullmatch(raw):
        raise forms.ValidationError(rules, code="format")
    amount = Decimal(raw).quantize(CENT)
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise forms.ValidationError(rules, code="range")
    return amount


def _key_field() -> forms.UUIDField:
    return forms.UUIDField(
        required=False,
        initial=uuid.uuid4,
        widget=forms.HiddenInput,
        error_messages={"invalid": "This form is damaged: reload the page and try again."},
    )


class AmountForm(forms.Form):
    amount = forms.CharField(
        max_length=64,
        error_messages={"required": AMOUNT_RULES, "max_length": AMOUNT_RULES},
        widget=forms.TextInput(
            attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "0.00"}
        ),
    )

    def clean_amount(self) -> Decimal:
        return _amount(self.cleaned_data["amount"], AMOUNT_RULES)

    memo = forms.CharField(
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"maxlength": MEMO_MAX_LENGTH, "autocomplete": "off"}),
    )

    def clean_memo(self) -> str:
        # The model's own rule (Account.deposit & co. check it again for every caller).
        try:
            return checked_memo(self.cleaned_data["memo"])
        except InvalidMemo as error:
            raise forms.ValidationError(str(error), code="memo") from None

    # Made when the form is rendered, so one submission sent twice (a double click, a retry
    # after a lost reply) is applied once. Optional: without it every request is a new one.
    idempotency_key = _key_field()

    @property
    def first_error(self) -> str:
        """The form shows one error line: the first field's first error."""
        return next((str(errors[0]) for errors in self.errors.values()), "")

    def renew_key(self) -> None:
        """Give a bound form a fresh key: the one it carried names an operation already done,
        so what the user sends next is a new operation."""
        # items(), not **: a QueryDict keeps a list per key, items() the values sent.
        self.data = {**dict(self.data.items()), "idempotency_key": str(uuid.uuid4())}


class WithdrawForm(AmountForm):
    # The account version of the balance the page showed (the seen-balance guard). Optional:
    # clients that send none are not guarded.
    seen_version = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=2**63 - 1,
        widget=forms.HiddenInput,
        error_messages=dict.fromkeys(
            ("invalid", "min_value", "max_value"),
            "This form is damaged: reload the page and try again.",
        ),
    )

    def confirm_with(self, version: int) -> None:
        """The confirm step of the guard: the same form (same key), with the version the
        person has now been shown."""
        self.data = {**dict(self.data.items()), "seen_version": str(version)}


class TransferForm(WithdrawForm):
    # The view looks the account up among the user's own and answers 404 otherwise.
    to_account = forms.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        error_messages=dict.fromkeys(
            ("required", "invalid", "min_value", "max_value"), "Choose the account to transfer to."
        ),
    )


class AccountForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        # Control characters (newlines, tabs, NUL...) have no place in a name, and a newline
        # would break the e-mail subjects the name appears in.
        if any(unicodedata.category(char).startswith("C") for char in name):
            raise forms.ValidationError("Use letters, digits, spaces and punctuation only.")
        return name


class LowercaseEmailField(forms.EmailField):
    """An address lower-cased before it is validated, so the address that passed validation
    is the one stored and mailed: lower() can turn a valid address into an invalid one
    ("İ" becomes "i" and a combining dot) or make it longer than 254 characters."""

    def to_python(self, value) -> str:
        return (super().to_python(value) or "").lower()


class InviteForm(forms.Form):
    email = LowercaseEmailField(
        label="Invite by e-mail",
        max_length=254,
        error_messages={
            "required": "Enter the e-mail address of the person to invite.",
            "invalid": "Enter a valid e-mail address, like name@example.com.",
        },
    )


class SignupForm(allauth_forms.SignupForm):
    def try_save(self, request):
        # A new address costs a password hash (set_password); an address already registered
        # costs none, as allauth only e-mails its owner. Hashing the password given here too
        # keeps the response time from telling which addresses have an account.
        if self.account_already_exists:
            make_password(self.cleaned_data["password1"])
        return super().try_save(request)


def _rule_amount(raw: str) -> Decimal | None:
    """A rule's amount as for deposits; blank is None (the rule is off)."""
    raw = raw.strip()
    return _amount(raw, RULE_RULES) if raw else None


RULE_RULES = f"{AMOUNT_RULES[:-1]}; or leave it empty to turn the rule off."


class RulesForm(forms.Form):
    approval_threshold = forms.CharField(
        required=False, max_length=64, error_messages={"max_length": RULE_RULES}
    )
    daily_limit = forms.CharField(
        required=False, max_length=64, error_messages={"max_length": RULE_RULES}
    )
    # A double click on a loosening makes one request.
    idempotency_key = _key_field()

    first_error = AmountForm.first_error

    def clean_approval_threshold(self) -> Decimal | None:
        return _rule_amount(self.cleaned_data["approval_threshold"])

    def clean_daily_limit(self) -> Decimal | None:
        return _rule_amount(self.cleaned_data["daily_limit"])
