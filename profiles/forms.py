from __future__ import annotations

from django import forms

from .models import NAME_MAX_LENGTH, Profile, validate_display_name


class NameField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(
            label="Your name",
            help_text="How the other holders see you: in the history, the holders list and "
            "e-mails.",
            strip=True,
            validators=[validate_display_name],
            error_messages={"required": "Enter your name."},
            widget=forms.TextInput(attrs={"autocomplete": "name", "maxlength": NAME_MAX_LENGTH}),
            **kwargs,
        )


class SignupForm(forms.Form):
    """The fields allauth's sign-up form adds to its own (ACCOUNT_SIGNUP_FORM_CLASS)."""

    display_name = NameField()
    field_order = ["display_name", "email", "password1", "password2"]

    def signup(self, request, user) -> None:
        Profile.set_name(user, self.cleaned_data["display_name"])


class ProfileForm(forms.Form):
    display_name = NameField()
