import re
from decimal import Decimal

from django import forms

from .models import CENT

MIN_AMOUNT = CENT
MAX_AMOUNT = Decimal("1000000.00")
# ASCII digits only (\d would accept Arabic-Indic and other digits), an optional point and at
# most two decimals: no signs, exponents, separators, NaN or Infinity.
PLAIN_DECIMAL = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
AMOUNT_RULES = (
    "Enter an amount like 125.50: digits with an optional point and at most two decimals, "
    "from 0.01 to 1,000,000.00."
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
        raw = self.cleaned_data["amount"]
        if not PLAIN_DECIMAL.fullmatch(raw):
            raise forms.ValidationError(AMOUNT_RULES, code="format")
        amount = Decimal(raw).quantize(CENT)
        if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
            raise forms.ValidationError(AMOUNT_RULES, code="range")
        return amount


class AccountForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)


class InviteForm(forms.Form):
    email = forms.EmailField(
        label="Invite by e-mail",
        max_length=254,
        error_messages={
            "required": "Enter the e-mail address of the person to invite.",
            "invalid": "Enter a valid e-mail address, like name@example.com.",
        },
    )

    def clean_email(self) -> str:
        return self.cleaned_data["email"].lower()
