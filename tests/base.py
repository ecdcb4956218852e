from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from decimal import Decimal

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import encrypt
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import TestCase
from django.urls import reverse

from accounts.models import Account
from profiles.models import Profile

PASSWORD = "correct-horse-battery"
# Headers of a request that htmx sends.
HX = {"HTTP_HX_REQUEST": "true"}

# Every class of bad amount the form must refuse, each with a 422 and nothing written.
BAD_AMOUNTS = [
    "",
    " ",
    "0",
    "0.00",
    "0.001",
    "-5",
    "+5",
    "1e3",
    "1E3",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "12.345",
    "1,000",
    "1 000",
    "1_000",
    "٣",
    "１２",
    "5.",
    ".5",
    "0x10",
    "1000000.01",
    "99999999999",
    "9" * 200,
    "12abc",
    "$5",
    "5$",
    "1.2.3",
]


def make_user(email: str, name: str | None = None):
    """A user with a verified address; with `name`, a display name (else they are shown by
    the part of the address before the @)."""
    user = get_user_model().objects.create_user(
        username=email.split("@")[0], email=email, password=PASSWORD
    )
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    if name is not None:
        Profile.set_name(user, name)
    return user


def empty_the_queue() -> None:
    """Delete every job of the background worker's queue. Its tables belong to procrastinate,
    not to models that the test database flush empties, so jobs would outlive their test."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_periodic_defers")
        cursor.execute("DELETE FROM procrastinate_jobs")
        cursor.execute("DELETE FROM procrastinate_workers")


def make_staff(email: str):
    user = make_user(email)
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    return user


def totp(secret: str, at: float | None = None) -> str:
    """RFC 6238, as an authenticator app computes it (written here, not borrowed from allauth)."""
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(base64.b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def give_authenticator(user) -> str:
    """An authenticator app (TOTP) for the user, as if set up on the two-factor page (stored
    the way allauth stores it); returns the secret the app would hold."""
    secret = base64.b32encode(secrets.token_bytes(20)).decode()
    Authenticator.objects.create(
        user=user, type=Authenticator.Type.TOTP, data={"secret": encrypt(secret)}
    )
    return secret


def sign_in_with_two_factor(client, user, secret: str) -> None:
    """The whole sign-in: e-mail and password, then the authenticator's code."""
    client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    client.post(reverse("mfa_authenticate"), {"code": totp(secret)})
    assert client.session.get("_auth_user_id") == str(user.pk), "the sign-in did not complete"


class JointAccountTestCase(TestCase):
    """alice and bob hold "Household" with $1000.00; carol holds nothing. Their display
    names are Alice, Bob and Carol."""

    @classmethod
    def setUpTestData(cls):
        cls.alice = make_user("alice@example.com", "Alice")
        cls.bob = make_user("bob@example.com", "Bob")
        cls.carol = make_user("carol@example.com", "Carol")
        cls.account = Account.open("Household", by=cls.alice)
        cls.account.memberships.create(user=cls.bob)
        cls.account.deposit(Decimal("1000.00"), by=cls.alice)

    def setUp(self):
        self.client.force_login(self.alice)

    def url(self, name: str, **query) -> str:
        url = reverse(f"accounts:{name}", args=[self.account.pk])
        if query:
            url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
        return url

    def balance(self) -> Decimal:
        self.account.refresh_from_db()
        return self.account.balance

    def data_balance(self, response) -> str:
        """The `data-balance` of the `#balance` element that the response carries."""
        return self.data_attr(response, "balance", "data-balance")

    def data_attr(self, response, element_id: str, attribute: str) -> str:
        """`attribute` of the one element with id `element_id` that the response carries."""
        from html.parser import HTMLParser

        found = []

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                attrs = dict(attrs)
                if attrs.get("id") == element_id:
                    found.append(attrs[attribute])

        Parser().feed(response.content.decode())
        self.assertEqual(len(found), 1, f"exactly one #{element_id} element")
        return found[0]


class AdminTestCase(JointAccountTestCase):
    """The Household fixture, signed in to the admin as a superuser (with the two-factor step
    staff cannot skip)."""

    def setUp(self):
        self.admin = make_staff("root@example.com")
        sign_in_with_two_factor(self.client, self.admin, give_authenticator(self.admin))
