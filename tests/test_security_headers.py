from __future__ import annotations

from django.test import TransactionTestCase
from django.urls import reverse

from tests.base import PASSWORD, JointAccountTestCase, make_user
from tests.production import run_in_production
from tests.servers import shared_database_url


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    parsed = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


class ContentSecurityPolicyTests(JointAccountTestCase):
    def pages(self):
        yield self.client.get(reverse("accounts:list"))
        yield self.client.get(self.url("detail"))
        yield self.client.post(self.url("deposit"), {"amount": "1.00"}, HTTP_HX_REQUEST="true")
        self.client.logout()
        yield self.client.get(reverse("account_login"))

    def test_it_allows_only_our_own_scripts_and_styles(self):
        for response in self.pages():
            with self.subTest(path=response.request["PATH_INFO"]):
                policy = directives(response)
                self.assertEqual(policy["script-src"], ["'self'"])
                self.assertEqual(policy["style-src"], ["'self'"])
                self.assertEqual(policy["default-src"], ["'self'"])
                self.assertEqual(policy["object-src"], ["'none'"])
                self.assertEqual(policy["base-uri"], ["'none'"])
                self.assertNotIn("unsafe", response["Content-Security-Policy"])

    def test_it_cannot_be_framed(self):
        response = self.client.get(self.url("detail"))
        self.assertEqual(directives(response)["frame-ancestors"], ["'none'"])
        self.assertEqual(response["X-Frame-Options"], "DENY")

    def test_the_pages_carry_no_inline_script_or_style(self):
        for response in self.pages():
            body = response.content.decode()
            with self.subTest(path=response.request["PATH_INFO"]):
                self.assertNotIn("<script>", body)
                self.assertNotIn("<style", body)
                self.assertNotIn(" style=", body)
                self.assertNotIn(" onclick=", body)

    def test_htmx_runs_without_eval_indicator_styles_or_history_cache(self):
        response = self.client.get(self.url("detail"))
        self.assertContains(response, '"allowEval": false')
        self.assertContains(response, '"includeIndicatorStyles": false')
        self.assertContains(response, '"historyCacheSize": 0')


class HeaderTests(JointAccountTestCase):
    def test_it_sends_nosniff_referrer_policy_and_opener_policy(self):
        response = self.client.get(self.url("detail"))
        self.assertEqual(response["X-Content-Type-Options"], "nosniff")
        self.assertEqual(response["Referrer-Policy"], "same-origin")
        self.assertEqual(response["Cross-Origin-Opener-Policy"], "same-origin")

    def test_the_polled_balance_is_revalidated_not_stored_by_shared_caches(self):
        first = self.client.get(self.url("balance"), HTTP_HX_REQUEST="true")
        again = self.client.get(
            self.url("balance"), HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=first["ETag"]
        )
        self.assertEqual((first.status_code, again.status_code), (200, 304))
        for response in (first, again):
            self.assertEqual(response["Cache-Control"], "no-cache, private")
            self.assertEqual(response["ETag"], first["ETag"])


class ProductionSettingsTests(JointAccountTestCase):
    """DJANGO_SECURE=1 (the default when DEBUG is off), in a process of its own."""

    def test_it_redirects_http_to_https_and_sends_hsts_over_https(self):
        result = run_in_production("""
http = client.get("/auth/login/")
https = client.get("/auth/login/", secure=True)
print(json.dumps({
    "http": [http.status_code, http.get("Location")],
    "https": https.status_code,
    "hsts": https.get("Strict-Transport-Security"),
}))
""")
        self.assertEqual(result["http"], [301, "https://testserver/auth/login/"])
        self.assertEqual(result["https"], 200)
        self.assertEqual(result["hsts"], "max-age=31536000; includeSubDomains; preload")


class ProductionCookieTests(TransactionTestCase):
    def test_a_real_sign_in_over_https_sets_secure_httponly_same_site_cookies(self):
        make_user("alice@example.com")  # committed, so the other process sees her
        result = run_in_production(
            f"""
client = Client(enforce_csrf_checks=True)
page = client.get("/auth/login/", secure=True)
response = client.post(
    "/auth/login/",
    {{"login": "alice@example.com", "password": "{PASSWORD}",
      "csrfmiddlewaretoken": page.cookies["csrftoken"].value}},
    secure=True, headers={{"Referer": "https://testserver/auth/login/"}},
)
cookies = {{name: [bool(c["secure"]), bool(c["httponly"]), c["samesite"]]
            for name, c in response.cookies.items()}}
print(json.dumps({{"status": response.status_code, "cookies": cookies}}))
""",
            DATABASE_URL=shared_database_url(),
        )
        self.assertEqual(result["status"], 302)  # signed in
        self.assertEqual(result["cookies"]["sessionid"], [True, True, "Lax"])
        self.assertEqual(result["cookies"]["csrftoken"], [True, False, "Lax"])  # rotated
