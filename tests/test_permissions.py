from __future__ import annotations

from django.test import Client
from django.urls import reverse

from tests.base import JointAccountTestCase


class PermissionTests(JointAccountTestCase):
    """What the URLconf-driven matrix (tests/test_authorization_matrix.py) does not cover:
    who may do what on each URL is there."""

    def test_a_malformed_current_url_header_still_redirects(self):
        self.client.logout()
        response = self.client.get(
            self.url("balance"), HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://["
        )
        login = reverse("account_login")
        self.assertEqual(response["HX-Redirect"], f"{login}?next={self.url('balance')}")

    def test_a_form_sent_after_the_session_ended_never_comes_back_to_a_foreign_page(self):
        # Coming back to the page the form was on: tests/test_authorization_matrix.py.
        self.client.logout()
        login = reverse("account_login")
        foreign = self.client.post(
            self.url("deposit"), {"amount": "5"}, HTTP_REFERER="https://evil.example/x"
        )
        self.assertEqual(foreign["Location"], f"{login}?next=/")

    def test_a_stale_htmx_page_reloads_on_404_and_403(self):
        self.client.force_login(self.carol)  # e.g. she left the account in another tab
        response = self.client.get(self.url("balance"), HTTP_HX_REQUEST="true")
        self.assertEqual((response.status_code, response["HX-Refresh"]), (404, "true"))
        client = Client(enforce_csrf_checks=True)  # e.g. the CSRF token rotated meanwhile
        client.force_login(self.alice)
        response = client.post(self.url("deposit"), {"amount": "1"}, HTTP_HX_REQUEST="true")
        self.assertEqual((response.status_code, response["HX-Refresh"]), (403, "true"))

    def test_the_home_page_goes_to_the_accounts(self):
        self.assertRedirects(self.client.get("/"), reverse("accounts:list"))

    def test_a_non_holder_does_not_see_the_account_in_their_list(self):
        self.client.force_login(self.carol)
        self.assertNotContains(self.client.get(reverse("accounts:list")), "Household")

    def test_an_unknown_account_is_404(self):
        response = self.client.get(reverse("accounts:detail", args=[987654]))
        self.assertEqual(response.status_code, 404)

    def test_csrf_is_enforced(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.alice)
        response = client.post(self.url("deposit"), {"amount": "1.00"}, HTTP_HX_REQUEST="true")
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.balance(), 1000)

    def test_the_csrf_token_reaches_htmx_through_the_body(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.alice)
        page = client.get(self.url("detail")).content.decode()
        token = page.split('hx-headers=\'{"X-CSRFToken": "')[1].split('"')[0]
        response = client.post(
            self.url("deposit"), {"amount": "1.00"}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.balance(), 1001)
