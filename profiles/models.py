from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from jointbank.plain_text import describe, first_hidden_character

NAME_MAX_LENGTH = 60


def validate_display_name(name: str) -> None:
    if not name.strip():
        raise ValidationError("Enter your name.", code="required")
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            f"Keep your name to {NAME_MAX_LENGTH} characters (this one has {len(name)}).",
            code="max_length",
        )
    if (char := first_hidden_character(name)) is not None:
        raise ValidationError(
            f"Use letters, digits, spaces and punctuation only: {describe(char)} is not allowed.",
            code="hidden_character",
        )


class Profile(models.Model):
    """What a user shows other people: their display name.

    A row of its own, one-to-one with Django's default User (which the project keeps): users
    created before names existed, or by the admin, have no row and are shown by the part of
    their address before the @ (`display_name`).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="profile"
    )
    display_name = models.CharField(max_length=NAME_MAX_LENGTH, validators=[validate_display_name])

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(display_name=""), name="profile_name_not_empty"),
        ]

    def __str__(self):
        return self.display_name

    def save(self, *args, **kwargs):
        # Every way in (sign-up, the profile page, seed_demo, the shell) gets the same rules.
        self.display_name = self.display_name.strip()
        self.full_clean(exclude=["user"], validate_unique=False, validate_constraints=False)
        super().save(*args, **kwargs)

    @classmethod
    def set_name(cls, user, name: str) -> Profile:
        profile, _ = cls.objects.update_or_create(user=user, defaults={"display_name": name})
        user.profile = profile  # so that display_name(user) sees it at once
        return profile


def display_name(user) -> str:
    """The user's name, else the part of their address before the @ (else their username).

    Lists of entries or holders must load the profile with the user
    (`select_related("created_by__profile")`): otherwise every row costs one query.
    """
    # A missing profile raises RelatedObjectDoesNotExist, an AttributeError.
    profile = getattr(user, "profile", None)
    if profile is not None and profile.display_name:
        return profile.display_name
    email = getattr(user, "email", "")
    return email.split("@")[0] if email else user.get_username()
