"""JOINTBANK_REQUIRE_MFA: with it on, a holder needs two-factor sign-in before any account
page; with it off (the default), an authenticator stays each holder's choice."""

from __future__ import annotations

from decimal import Decimal

from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from tests.base import JointAccountTestCase, give_authenticator, sign_in_with_two_factor, totp

SET_UP = reverse("mfa_activate_totp")


@override_settings(JOINTBANK_REQUIRE_MFA=True)
class RequiredTests(JointAccountTestCase):
    def setUp(self):
        cache.clear()  # sign-ins count towards allauth's rate limits

    def test_a_holder_without_an_authenticator_sets_one_up_before_any_account_page(self):
        self.client.force_login(self.alice)
        for url in (reverse("accounts:list"), self.url("detail"), self.url("history")):
            with self.subTest(url=url):
                self.assertRedirects(self.client.get(url), SET_UP, fetch_redirect_response=False)
        response = self.client.post(self.url("deposit"), {"amount": "5.00"})
        self.assertRedirects(response, SET_UP, fetch_redirect_response=False)
        self.assertEqual(self.balance(), Decimal("1000.00"))
        # The pages to set it up, and the rest of the sign-in settings, stay open.
        self.assertEqual(self.client.get(reverse("mfa_index")).status_code, 200)

    def test_htmx_requests_are_sent_there_with_hx_redirect(self):
        self.client.force_login(self.alice)
        page = f"http://testserver{self.url('detail')}"
        poll = self.client.get(
            self.url("balance"), HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=page
        )
        self.assertEqual(poll["HX-Redirect"], SET_UP)
        deposit = self.client.post(self.url("deposit"), {"amount": "5.00"}, HTTP_HX_REQUEST="true")
        self.assertEqual(deposit["HX-Redirect"], SET_UP)
        self.assertEqual(self.balance(), Decimal("1000.00"))

    def test_a_holder_signed_in_with_the_code_gets_the_pages(self):
        sign_in_with_two_factor(self.client, self.alice, give_authenticator(self.alice))
        self.assertEqual(self.client.get(self.url("detail")).status_code, 200)
        self.client.post(self.url("deposit"), {"amount": "5.00"})
        self.assertEqual(self.balance(), Decimal("1005.00"))

    def test_a_session_that_never_entered_the_code_is_asked_for_it(self):
        # Signed in before the authenticator was set up on another device, say.
        secret = give_authenticator(self.alice)
        self.client.force_login(self.alice)
        response = self.client.get(self.url("detail"))
        self.assertRedirects(
            response,
            f"{reverse('mfa_reauthenticate')}?next={self.url('detail')}",
            fetch_redirect_response=False,
        )
        done = self.client.post(response["Location"], {"code": totp(secret)})
        self.assertRedirects(done, self.url("detail"))


class NotRequiredTests(JointAccountTestCase):
    def test_by_default_a_holder_without_an_authenticator_gets_the_pages(self):
        for url in (reverse("accounts:list"), self.url("detail")):
            self.assertEqual(self.client.get(url).status_code, 200)
