"""The admin signs in through allauth: its rate limits and its two-factor step, which staff
cannot skip. Before, /admin/login/ took a password alone, with no limit on guesses."""

from __future__ import annotations

from django.core.cache import cache
from django.test import TestCase, TransactionTestCase
from django.urls import reverse

from tests.base import (
    PASSWORD,
    give_authenticator,
    make_staff,
    make_user,
    sign_in_with_two_factor,
    totp,
)

ADMIN = reverse("admin:index")
ADMIN_LOGIN = reverse("admin:login")
LOGIN = reverse("account_login")


class StaffMember:
    def setUp(self):
        cache.clear()  # allauth's failure counts outlive a test in a shared cache
        self.staff = make_staff("root@example.com")

    def signed_in(self) -> bool:
        return "_auth_user_id" in self.client.session

    def sign_in_with_password(self, password=PASSWORD):
        return self.client.post(LOGIN, {"login": self.staff.email, "password": password})


class AdminSignInTests(StaffMember, TestCase):
    def test_the_admin_sign_in_is_allauths(self):
        response = self.client.get(f"{ADMIN_LOGIN}?next={ADMIN}")
        self.assertRedirects(response, f"{LOGIN}?next={ADMIN}", fetch_redirect_response=False)

    def test_twelve_wrong_passwords_then_the_right_one_do_not_get_in(self):
        # The old admin form's fields are not read any more: nothing is checked there.
        for _ in range(12):
            self.client.post(ADMIN_LOGIN, {"username": "root", "password": "wrong-password"})
        response = self.client.post(ADMIN_LOGIN, {"username": "root", "password": PASSWORD})
        self.assertTrue(response["Location"].startswith(LOGIN))
        self.assertFalse(self.signed_in())
        # And the sign-in it sends to counts failures: after twelve, the right one is refused.
        for _ in range(12):
            self.sign_in_with_password("wrong-password")
        self.assertContains(self.sign_in_with_password(), "Too many failed login attempts")
        self.assertFalse(self.signed_in())
        self.assertRedirects(
            self.client.get(ADMIN), f"{ADMIN_LOGIN}?next={ADMIN}", fetch_redirect_response=False
        )

    def test_a_password_alone_does_not_open_the_admin_to_staff_with_an_authenticator(self):
        secret = give_authenticator(self.staff)
        self.assertRedirects(self.sign_in_with_password(), reverse("mfa_authenticate"))
        self.assertFalse(self.signed_in())
        self.assertEqual(self.client.get(ADMIN).status_code, 302)

        self.client.post(reverse("mfa_authenticate"), {"code": totp(secret)})
        self.assertEqual(self.client.get(ADMIN).status_code, 200)

    def test_a_session_that_never_entered_the_code_is_asked_for_it(self):
        # A session opened by the old admin form (password only), or before the authenticator
        # was set up on another device: signed in, but the authenticator never proved.
        secret = give_authenticator(self.staff)
        self.client.force_login(self.staff)
        url = reverse("admin:accounts_account_changelist")
        response = self.client.get(url)
        self.assertRedirects(
            response, f"{reverse('mfa_reauthenticate')}?next={url}", fetch_redirect_response=False
        )
        done = self.client.post(response["Location"], {"code": totp(secret)})
        self.assertRedirects(done, url, fetch_redirect_response=False)
        self.assertEqual(self.client.get(url).status_code, 200)

    def test_a_holder_who_is_not_staff_is_refused(self):
        holder = make_user("alice@example.com")
        sign_in_with_two_factor(self.client, holder, give_authenticator(holder))
        response = self.client.get(ADMIN, follow=True)
        self.assertEqual(response.status_code, 403)


class SettingUpTwoFactorTests(StaffMember, TransactionTestCase):
    """allauth announces a new authenticator once its transaction has committed, which in a
    TestCase (one transaction around the test) happens only after the response is sent."""

    def test_staff_without_an_authenticator_set_one_up_before_any_admin_page(self):
        self.sign_in_with_password()
        self.assertTrue(self.signed_in())
        for url in (ADMIN, reverse("admin:accounts_account_changelist")):
            self.assertRedirects(
                self.client.get(url),
                reverse("mfa_activate_totp"),
                fetch_redirect_response=False,
            )
        # Setting it up (its code entered once) opens the admin, without asking a second code.
        # (allauth asks for the password again first, and the page says why they are there.)
        page = self.client.get(reverse("mfa_activate_totp"), follow=True)
        self.assertContains(page, "Two-factor sign-in is required here")
        self.client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
        page = self.client.get(reverse("mfa_activate_totp"))
        secret = page.context["form"].secret
        self.client.post(reverse("mfa_activate_totp"), {"code": totp(secret)})
        self.assertEqual(self.client.get(ADMIN).status_code, 200)
