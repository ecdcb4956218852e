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

    def test_an_unknown_path_is_logged_as_asked(self):
        line = self.logged(lambda: self.client.get("/no/such/page"))
        self.assertEqual(
            (line["path"], line["status"], line["account"]), ("/no/such/page", 404, None)
        )
