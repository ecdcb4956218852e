"""Two-factor sign-in (allauth.mfa): any holder can turn on an authenticator app (TOTP) and
then needs its code, or a recovery code, after the password."""

from __future__ import annotations

import time

from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tests.base import PASSWORD, JointAccountTestCase, totp


class TwoFactorTests(JointAccountTestCase):
    def setUp(self):
        cache.clear()
        self.client = Client()

    def sign_in_with_password(self, client=None):
        client = client or self.client
        return client.post(
            reverse("account_login"), {"login": "alice@example.com", "password": PASSWORD}
        )

    def turn_on_totp(self) -> tuple[str, list[str]]:
        self.sign_in_with_password()
        # Turning it on asks for the password again, even right after signing in.
        page = self.client.get(reverse("mfa_activate_totp"))
        self.assertTrue(page["Location"].startswith(reverse("account_reauthenticate")))
        self.client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
        page = self.client.get(reverse("mfa_activate_totp"))
        self.assertEqual(page.status_code, 200)
        secret = page.context["form"].secret
        # A code from another time window is refused, and nothing is turned on.
        wrong = self.client.post(
            reverse("mfa_activate_totp"), {"code": totp(secret, time.time() - 3600)}
        )
        self.assertContains(wrong, "Incorrect code")
        done = self.client.post(reverse("mfa_activate_totp"), {"code": totp(secret)})
        self.assertRedirects(done, reverse("mfa_view_recovery_codes"))
        codes = self.client.get(reverse("mfa_view_recovery_codes")).context["unused_codes"]
        self.assertGreaterEqual(len(codes), 10)
        self.client.post(reverse("account_logout"))
        return secret, codes

    def test_every_page_links_to_two_factor_settings(self):
        self.sign_in_with_password()
        for url in (reverse("accounts:list"), self.url("detail")):
            self.assertContains(self.client.get(url), f'href="{reverse("mfa_index")}"')

    def test_a_password_alone_no_longer_signs_in_once_totp_is_on(self):
        self.turn_on_totp()

        response = self.sign_in_with_password()
        self.assertRedirects(response, reverse("mfa_authenticate"))
        self.assertRedirects(
            self.client.get(self.url("detail")),
            f"{reverse('account_login')}?next={self.url('detail')}",
            fetch_redirect_response=False,
        )

    def test_the_authenticator_code_completes_the_sign_in(self):
        secret, _ = self.turn_on_totp()
        self.sign_in_with_password()

        wrong = self.client.post(reverse("mfa_authenticate"), {"code": "000000"})
        self.assertContains(wrong, "Incorrect code")
        self.assertEqual(self.client.get(self.url("detail")).status_code, 302)

        code = totp(secret)
        response = self.client.post(reverse("mfa_authenticate"), {"code": code})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(self.client.get(self.url("detail")).status_code, 200)

        # Someone who saw the password and that code cannot replay it (allauth remembers used
        # codes in the shared cache, so not on another server process either).
        thief = Client()
        self.sign_in_with_password(thief)
        replay = thief.post(reverse("mfa_authenticate"), {"code": code})
        self.assertContains(replay, "Incorrect code")
        self.assertEqual(thief.get(self.url("detail")).status_code, 302)

    def test_a_recovery_code_works_once(self):
        _, codes = self.turn_on_totp()
        self.sign_in_with_password()
        self.client.post(reverse("mfa_authenticate"), {"code": codes[0]})
        self.assertEqual(self.client.get(self.url("detail")).status_code, 200)

        other = Client()
        self.sign_in_with_password(other)
        again = other.post(reverse("mfa_authenticate"), {"code": codes[0]})
        self.assertContains(again, "Incorrect code")
        self.assertEqual(other.get(self.url("detail")).status_code, 302)
