"""Display names: asked at sign-up, edited on /profile/, shown instead of addresses."""

from __future__ import annotations

import re
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from profiles.models import Profile, display_name
from tests.base import JointAccountTestCase, make_user

# Each would hide or reorder the text around it: a right-to-left override, a zero-width
# space, a zero-width joiner, a byte-order mark, a newline, a NUL, a line separator.
HIDDEN = ["\u202e", "\u200b", "\u200d", "\ufeff", "\n", "\x00", "\u2028"]


def signup_data(**overrides):
    data = {
        "display_name": "Frank Lloyd",
        "email": "frank@example.com",
        "password1": "a-long-new-password-42",
        "password2": "a-long-new-password-42",
    }
    return {**data, **overrides}


class SignupTests(TestCase):
    def test_it_asks_for_the_name_first(self):
        page = self.client.get(reverse("account_signup")).content.decode()
        names = re.findall(r'<input [^>]*name="(\w+)"', page)
        fields = [name for name in names if name != "csrfmiddlewaretoken"]
        self.assertEqual(fields[:4], ["display_name", "email", "password1", "password2"])
        self.assertIn("Your name", page)

    def test_signing_up_stores_the_trimmed_name(self):
        response = self.client.post(reverse("account_signup"), signup_data(display_name=" Frank "))
        self.assertEqual(response.status_code, 302)
        user = get_user_model().objects.get(email="frank@example.com")
        self.assertEqual(user.profile.display_name, "Frank")
        self.assertEqual(len(mail.outbox), 1)  # the verification e-mail, as before

    def test_a_missing_long_or_hidden_character_name_creates_nobody(self):
        for name, message in [
            ("", "Enter your name."),
            ("   ", "Enter your name."),
            ("x" * 61, "Keep your name to 60 characters"),
            *[(f"Fr{char}ank", "is not allowed") for char in HIDDEN],
        ]:
            with self.subTest(name=name):
                data = signup_data(display_name=name)
                response = self.client.post(reverse("account_signup"), data)
                self.assertContains(response, message, status_code=200)
        self.assertFalse(get_user_model().objects.exists())

    def test_sixty_characters_are_enough(self):
        name = "é" * 60
        self.client.post(reverse("account_signup"), signup_data(display_name=name))
        self.assertEqual(Profile.objects.get().display_name, name)


class ProfilePageTests(JointAccountTestCase):
    def test_it_shows_the_name_and_links_to_sign_in_settings(self):
        response = self.client.get(reverse("profiles:profile"))
        self.assertContains(response, 'value="Alice"')
        # No name yet: the part of the address before the @.
        self.client.force_login(make_user("dave@example.com"))
        self.assertContains(self.client.get(reverse("profiles:profile")), 'value="dave"')
        for name in ("account_email", "account_change_password", "mfa_index"):
            self.assertContains(response, f'href="{reverse(name)}"')

    def test_saving_a_name_shows_it_everywhere(self):
        response = self.client.post(reverse("profiles:profile"), {"display_name": "  Alice L. "})
        self.assertRedirects(response, reverse("profiles:profile"), status_code=303)
        self.assertEqual(Profile.objects.get(user=self.alice).display_name, "Alice L.")
        page = self.client.get(self.url("detail"))
        self.assertContains(page, '<a class="who" href="/profile/"', count=1)
        self.assertContains(page, "Alice L.")

    def test_a_bad_name_is_a_422_and_keeps_the_old_one(self):
        for name in ["", "x" * 61, *[f"Al{char}ice" for char in HIDDEN]]:
            with self.subTest(name=name):
                response = self.client.post(reverse("profiles:profile"), {"display_name": name})
                self.assertEqual(response.status_code, 422)
                self.assertContains(response, 'aria-invalid="true"', status_code=422)
        self.assertEqual(Profile.objects.get(user=self.alice).display_name, "Alice")

    def test_the_model_refuses_what_the_form_refuses(self):
        for name in ["", "x" * 61, "rent\u202egnirts"]:
            with self.subTest(name=name), self.assertRaises(ValidationError):
                Profile.set_name(self.bob, name)
        self.assertEqual(Profile.objects.get(user=self.bob).display_name, "Bob")

    def test_signed_out_visitors_are_sent_to_sign_in(self):
        self.client.logout()
        response = self.client.get(reverse("profiles:profile"))
        self.assertRedirects(
            response, f"{reverse('account_login')}?next=/profile/", fetch_redirect_response=False
        )


class NamesInsteadOfAddressesTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.account.withdraw(Decimal("5.00"), by=cls.bob)

    def history_cells(self, response) -> list[str]:
        body = response.content.decode().split('id="history-rows"')[1].split("</tbody>")[0]
        row = r'<tr id="entry-\d+" class="\w+">\s*<td>.*?</td>\s*<td>(.*?)</td>'
        return re.findall(row, body, re.S)

    def test_the_history_names_who_did_what(self):
        response = self.client.get(self.url("detail"))
        self.assertEqual(self.history_cells(response), ["Bob", "Alice"])
        history = response.content.decode().split('id="history-rows"')[1]
        self.assertNotIn("@example.com", history)

    def test_the_holders_list_shows_names_with_their_addresses(self):
        response = self.client.get(self.url("detail"))
        holders = response.content.decode().split('id="sharing"')[1].split("</ul>")[0]
        self.assertIn("Bob", holders)
        self.assertIn("bob@example.com", holders)

    def test_a_user_without_a_name_shows_the_part_before_the_at(self):
        dave = make_user("dave.smith@example.com")
        self.assertEqual(display_name(dave), "dave.smith")

    def test_the_invitation_names_the_inviter(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post(self.url("invite"), {"email": "new@example.com"})
        self.assertIn("Alice invites you", mail.outbox[-1].subject)
        self.assertIn("Alice (alice@example.com) invites you", mail.outbox[-1].body)

    def test_the_history_loads_names_without_a_query_per_row(self):
        def queries():
            with CaptureQueriesContext(connection) as captured:
                self.assertEqual(self.client.get(self.url("detail")).status_code, 200)
            return len(captured)

        few = queries()
        carol = make_user("carol2@example.com", "Carol")
        self.account.add_holder(carol)
        for who in (self.alice, self.bob, carol) * 4:
            self.account.deposit(Decimal("1.00"), by=who)
        self.assertEqual(queries(), few)
