"""Sign-up does not tell whether an address is registered: the same page, and the same work."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core import mail
from django.core.cache import cache
from django.test import TestCase, override_settings
from django.urls import reverse

from tests.base import make_user

NEW_PASSWORD = "a-long-new-password-42"


class CountingHasher(PBKDF2PasswordHasher):
    """Django's default hasher, counting the passwords it hashes."""

    hashed = 0

    def encode(self, password, salt, iterations=None):
        CountingHasher.hashed += 1
        return super().encode(password, salt, iterations)


@override_settings(PASSWORD_HASHERS=["tests.test_signup.CountingHasher"])
class SignupTimingTests(TestCase):
    def setUp(self):
        cache.clear()  # allauth's sign-up rate limit
        make_user("alice@example.com")

    def sign_up(self, email: str) -> tuple:
        """The response, and how many passwords were hashed to give it."""
        before = CountingHasher.hashed
        response = self.client.post(
            reverse("account_signup"),
            {
                "display_name": "Dave",
                "email": email,
                "password1": NEW_PASSWORD,
                "password2": NEW_PASSWORD,
            },
        )
        return response, CountingHasher.hashed - before

    def test_a_registered_address_costs_the_same_password_hash_as_a_new_one(self):
        new, new_hashes = self.sign_up("dave@example.com")
        registered, registered_hashes = self.sign_up("alice@example.com")

        self.assertEqual((new_hashes, registered_hashes), (1, 1))
        # And the same answer: "we sent you an e-mail"; only the mails differ.
        self.assertEqual(new["Location"], registered["Location"])
        self.assertEqual(get_user_model().objects.filter(email="alice@example.com").count(), 1)
        self.assertEqual([m.to for m in mail.outbox], [["dave@example.com"], ["alice@example.com"]])
