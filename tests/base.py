from __future__ import annotations

from decimal import Decimal

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import TestCase
from django.urls import reverse

from accounts.models import Account

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


def make_user(email: str):
    user = get_user_model().objects.create_user(
        username=email.split("@")[0], email=email, password=PASSWORD
    )
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def empty_the_queue() -> None:
    """Delete every job of the background worker's queue. Its tables belong to procrastinate,
    not to models that the test database flush empties, so jobs would outlive their test."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_periodic_defers")
        cursor.execute("DELETE FROM procrastinate_jobs")
        cursor.execute("DELETE FROM procrastinate_workers")


class JointAccountTestCase(TestCase):
    """alice and bob hold "Household" with $1000.00; carol holds nothing."""

    @classmethod
    def setUpTestData(cls):
        cls.alice = make_user("alice@example.com")
        cls.bob = make_user("bob@example.com")
        cls.carol = make_user("carol@example.com")
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
        from html.parser import HTMLParser

        found = []

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                attrs = dict(attrs)
                if attrs.get("id") == "balance":
                    found.append(attrs["data-balance"])

        Parser().feed(response.content.decode())
        self.assertEqual(len(found), 1, "exactly one #balance element")
        return found[0]


class AdminTestCase(JointAccountTestCase):
    """The Household fixture, signed in to the admin as a superuser."""

    def setUp(self):
        self.admin = get_user_model().objects.create_superuser("root", "root@example.com", "x")
        self.client.force_login(self.admin)
