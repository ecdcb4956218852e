"""A sign-in ends when the browser closes, after 30 minutes without a user action (the
2-second balance poll is not one), and 12 hours after it began however active."""

from __future__ import annotations

from decimal import Decimal

from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse

from accounts.session_expiry import LAST_ACTIVITY, SIGNED_IN_AT
from tests.base import PASSWORD, JointAccountTestCase

LOGIN = reverse("account_login")


class SessionExpiryTests(JointAccountTestCase):
    def back(self, key: str, seconds: int) -> None:
        """Moves one of the session's clocks back, as if that much time had passed."""
        session = self.client.session
        session[key] -= seconds
        session.save()

    def poll(self):
        """What the open account page sends every 2 seconds."""
        self.account.refresh_from_db()
        return self.client.get(
            self.url("balance"),
            HTTP_HX_REQUEST="true",
            HTTP_HX_CURRENT_URL=f"http://testserver{self.url('detail')}",
            HTTP_IF_NONE_MATCH=f'"{self.account.version}"',
        )

    def signed_in(self) -> bool:
        return "_auth_user_id" in self.client.session

    def test_polls_do_not_keep_an_idle_session_alive(self):
        self.assertEqual(self.client.get(self.url("detail")).status_code, 200)
        self.back(LAST_ACTIVITY, 29 * 60)
        for _ in range(3):
            self.assertEqual(self.poll().status_code, 304)
        self.back(LAST_ACTIVITY, 2 * 60)  # 31 minutes since the page was opened, polls all along

        response = self.poll()
        self.assertEqual(response["HX-Redirect"], f"{LOGIN}?next={self.url('detail')}")
        self.assertFalse(self.signed_in())
        page = self.client.get(response["HX-Redirect"])
        self.assertContains(page, "You were signed out after 30 minutes without activity.")

    def test_a_user_action_keeps_the_session_alive(self):
        self.back(LAST_ACTIVITY, 29 * 60)
        self.client.post(self.url("deposit"), {"amount": "5.00"})
        self.back(LAST_ACTIVITY, 29 * 60)  # 58 minutes since signing in, 29 since the deposit

        self.assertEqual(self.poll().status_code, 304)  # still signed in: nothing new
        self.assertEqual(self.client.get(self.url("detail")).status_code, 200)
        self.assertTrue(self.signed_in())
        self.assertEqual(self.balance(), Decimal("1005.00"))

    def test_a_form_sent_after_the_timeout_changes_nothing(self):
        self.back(LAST_ACTIVITY, 31 * 60)
        response = self.client.post(self.url("deposit"), {"amount": "5.00"})
        self.assertTrue(response["Location"].startswith(LOGIN))
        self.assertEqual(self.balance(), Decimal("1000.00"))

    def test_a_sign_in_ends_after_12_hours_however_active(self):
        self.back(SIGNED_IN_AT, 12 * 60 * 60 - 60)
        self.assertEqual(self.client.get(self.url("detail")).status_code, 200)
        self.back(SIGNED_IN_AT, 2 * 60)
        response = self.client.get(self.url("detail"), follow=True)
        self.assertFalse(self.signed_in())
        self.assertContains(response, "You were signed out 12 hours after signing in.")

    @override_settings(JOINTBANK_SESSION_IDLE_TIMEOUT=5 * 60)
    def test_the_idle_timeout_is_a_setting(self):
        self.back(LAST_ACTIVITY, 5 * 60 + 1)
        response = self.client.get(self.url("detail"), follow=True)
        self.assertContains(response, "You were signed out after 5 minutes without activity.")

    def test_the_session_cookie_ends_with_the_browser(self):
        cache.clear()  # sign-ins count towards allauth's rate limits
        client = Client()
        form = client.get(LOGIN)
        self.assertNotIn("remember", form.context["form"].fields)  # no "Remember me"
        client.post(LOGIN, {"login": "alice@example.com", "password": PASSWORD})
        cookie = client.cookies["sessionid"]
        self.assertEqual((cookie["max-age"], cookie["expires"]), ("", ""))
        self.assertTrue(client.session.get_expire_at_browser_close())
