from __future__ import annotations

from decimal import Decimal

from django import forms

from accounts.forms import AMOUNT_RULES, AmountForm

from .models import Preference


class PreferenceForm(forms.Form):
    when = forms.ChoiceField(
        choices=Preference.When.choices,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose always, above an amount, or never."},
    )
    # Checked like a deposit's amount; required only with "above".
    above = forms.CharField(max_length=64, required=False, strip=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "notification-%s")  # unique among the page's forms
        super().__init__(*args, **kwargs)

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("when") != Preference.When.ABOVE:
            cleaned["above"] = None
            return cleaned
        amount = AmountForm({"amount": cleaned.get("above") or ""})
        if not amount.is_valid():
            self.add_error("above", f"For 'above an amount': {AMOUNT_RULES}")
        else:
            cleaned["above"] = amount.cleaned_data["amount"]
        return cleaned

    @property
    def first_error(self) -> str:
        return next((str(errors[0]) for errors in self.errors.values()), "")

    @classmethod
    def for_preference(cls, preference: Preference) -> PreferenceForm:
        above: Decimal | None = preference.above
        return cls(initial={"when": preference.when, "above": above if above else ""})
