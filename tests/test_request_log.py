from __future__ import annotations

import json

from django.urls import reverse

from tests.base import JointAccountTestCase


class RequestLogTests(JointAccountTestCase):
    def logged(self, request) -> dict:
        with self.assertLogs("jointbank.requests", "INFO") as logs:
            request()
        self.assertEqual(len(logs.records), 1, "one line per request")
        return json.loads(logs.records[0].getMessage())

    def test_it_logs_one_json_line_with_status_duration_user_and_account(self):
        line = self.logged(lambda: self.client.post(self.url("deposit"), {"amount": "5.00"}))
        self.assertEqual(
            {key: value for key, value in line.items() if key != "ms"},
            {
                "method": "POST",
                "path": "accounts/<int:pk>/deposit/",
                "status": 303,
                "user": self.alice.pk,
                "account": self.account.pk,
            },
        )
        self.assertIsInstance(line["ms"], float)
        self.assertGreater(line["ms"], 0)

    def test_it_logs_bad_input_and_outsiders_too(self):
        line = self.logged(lambda: self.client.post(self.url("deposit"), {"amount": "-1"}))
        self.assertEqual(line["status"], 422)
        self.client.force_login(self.carol)
        line = self.logged(lambda: self.client.get(self.url("detail")))
        self.assertEqual((line["status"], line["user"]), (404, self.carol.pk))

    def test_it_logs_the_user_who_just_signed_in(self):
        self.client.logout()
        line = self.logged(
            lambda: self.client.post(
                reverse("account_login"),
                {"login": "bob@example.com", "password": "correct-horse-battery"},
            )
        )
        self.assertEqual((line["status"], line["user"]), (302, self.bob.pk))

    def test_secrets_in_urls_stay_out_of_the_log(self):
        self.client.logout()
        secret = "1-c0ffee-not-a-real-reset-key"
        url = reverse("account_reset_password_from_key", kwargs={"uidb36": "1", "key": secret})
        line = self.logged(lambda: self.client.get(url))
        self.assertNotIn(secret, json.dumps(line))
        self.assertIn("<key>", line["path"])

    def test_an_unknown_path_keeps_only_route_words_and_ids(self):
        line = self.logged(lambda: self.client.get("/accounts/12/no-such-page/"))
        self.assertEqual(
            (line["path"], line["status"], line["account"]),
            ("/accounts/12/<redacted>/", 404, None),
        )

    def test_secrets_in_unmatched_urls_stay_out_of_the_log(self):
        invitation, token = self.account.invite("dave@example.com", by=self.alice)
        link = reverse("accounts:invitation", args=[invitation.pk, token])
        reset = reverse("account_reset_password_from_key", kwargs={"uidb36": "1", "key": "c0-ffee"})
        for url, logged in [
            # Without their trailing slash: redirected (301) to the link, unmatched themselves.
            (link.rstrip("/"), f"/accounts/invitations/{invitation.pk}/<redacted>"),
            (reset.rstrip("/"), "/auth/password/reset/key/<redacted>"),
        ]:
            with self.subTest(url=url):
                line = self.logged(lambda url=url: self.client.get(url))
                self.assertEqual(line["path"], logged)
                self.assertNotIn(token, json.dumps(line))
                self.assertNotIn("c0-ffee", json.dumps(line))

    def test_static_files_are_logged_as_asked(self):
        line = self.logged(lambda: self.client.get("/static/css/no-such.css"))
        self.assertEqual(line["path"], "/static/css/no-such.css")
