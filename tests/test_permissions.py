from django.test import Client
from django.urls import reverse

from tests.base import JointAccountTestCase

ACCOUNT_URLS = ["detail", "balance", "history", "deposit", "withdraw"]


class PermissionTests(JointAccountTestCase):
    def test_it_sends_signed_out_visitors_to_sign_in(self):
        self.client.logout()
        login = reverse("account_login")
        for url in [reverse("accounts:list"), reverse("accounts:create")] + [
            self.url(name) for name in ACCOUNT_URLS
        ]:
            for method in ("get", "post"):
                with self.subTest(url=url, method=method):
                    response = getattr(self.client, method)(url)
                    self.assertEqual(response.status_code, 302)
                    self.assertTrue(response["Location"].startswith(login))

    def test_signed_out_htmx_requests_get_an_hx_redirect_back_to_the_page(self):
        self.client.logout()
        page = "http://testserver" + self.url("detail")
        response = self.client.get(
            self.url("balance"), HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=page
        )
        self.assertEqual(response.status_code, 200)
        login = reverse("account_login")
        self.assertEqual(response["HX-Redirect"], f"{login}?next=/accounts/{self.account.pk}/")

    def test_a_malformed_current_url_header_still_redirects(self):
        self.client.logout()
        response = self.client.get(
            self.url("balance"), HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://["
        )
        login = reverse("account_login")
        self.assertEqual(response["HX-Redirect"], f"{login}?next={self.url('balance')}")

    def test_a_form_sent_after_the_session_ended_comes_back_to_its_page(self):
        self.client.logout()
        page = "http://testserver" + self.url("detail")
        response = self.client.post(self.url("deposit"), {"amount": "5"}, HTTP_REFERER=page)
        login = reverse("account_login")
        self.assertEqual(response["Location"], f"{login}?next={self.url('detail')}")
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

    def test_a_non_holder_gets_404_on_every_account_url(self):
        self.client.force_login(self.carol)
        for name in ACCOUNT_URLS:
            for method in ("get", "post"):
                with self.subTest(name=name, method=method):
                    url = self.url(name, before=1) if name == "history" else self.url(name)
                    data = {"amount": "1.00"} if method == "post" else {}
                    response = getattr(self.client, method)(url, data)
                    # Views that only take one method answer 405 to the other; never 200.
                    self.assertIn(response.status_code, (404, 405))
                    if (method == "post") == (name in ("deposit", "withdraw")):
                        self.assertEqual(response.status_code, 404)
        self.assertEqual(self.balance(), 1000)

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
