"""E-mail leaves through the SMTP server DJANGO_EMAIL_URL names: a real one (aiosmtpd), reached
by a real server process, and production refuses to start without an e-mail setting."""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, TransactionTestCase
from django.urls import reverse

from accounts.models import Account
from jointbank.email_url import email_settings
from tests.base import PASSWORD, make_user
from tests.servers import Visitor, gunicorn
from tests.smtp import smtp_server
from tests.test_settings import check

# An address and a password with the characters a URL must encode.
LOGIN = ("mailer@jointbank.test", "p@ss:w/rd")


class SmtpDeliveryTests(TransactionTestCase):
    def setUp(self):
        self.alice = make_user("alice@example.com")
        self.dave = make_user("dave@example.com")
        self.account = Account.open("Household", by=self.alice)

    def sign_in(self, server: str, email: str) -> Visitor:
        visitor = Visitor(server)
        status, _ = visitor.post_form(
            reverse("account_login"), {"login": email, "password": PASSWORD}
        )
        self.assertEqual(status, 200)  # the accounts page, after the redirect
        return visitor

    def invite_dave(self, server: str) -> None:
        alice = self.sign_in(server, "alice@example.com")
        page = reverse("accounts:detail", args=[self.account.pk])
        invite = reverse("accounts:invite", args=[self.account.pk])
        status, html = alice.post_form(invite, {"email": "dave@example.com"}, page=page)
        self.assertEqual(status, 200)
        self.assertIn("Invitation sent to dave@example.com", html)

    def test_an_invitation_arrives_through_the_smtp_server_of_DJANGO_EMAIL_URL(self):
        with smtp_server(login=LOGIN) as inbox, gunicorn(DJANGO_EMAIL_URL=inbox.url) as server:
            self.invite_dave(server)
            [message] = inbox.wait_for(1)

            self.assertEqual(inbox.recipients, [["dave@example.com"]])
            self.assertEqual(inbox.logins, [(LOGIN[0], True)])  # the decoded credentials
            self.assertEqual(message["To"], "dave@example.com")
            self.assertEqual(message["From"], "jointbank <noreply@jointbank.test>")
            self.assertEqual(
                message["Subject"],
                # By name (alice has none: the part of her address before the @).
                'alice invites you to share "Household" on jointbank',
            )
            # The link in it works for dave.
            link = re.search(r"http://localhost(/accounts/invitations/\S+/)", message.get_content())
            status, html = self.sign_in(server, "dave@example.com").get(link[1])
            self.assertEqual(status, 200)
            self.assertIn("Accept", html)

    def test_wrong_credentials_deliver_nothing(self):
        # The control: the server really checks the login the URL carries.
        with smtp_server(login=LOGIN) as inbox:
            wrong = inbox.url.replace("p%40ss", "guess")
            with gunicorn(DJANGO_EMAIL_URL=wrong) as server:
                self.invite_dave(server)  # saved; the mail failure is logged, not shown
                with self.assertRaises(AssertionError):
                    inbox.wait_for(1, timeout=3)
            self.assertEqual(inbox.logins, [(LOGIN[0], False)])

    def test_allauth_mail_names_jointbank_not_the_host(self):
        with smtp_server() as inbox, gunicorn(DJANGO_EMAIL_URL=inbox.url) as server:
            status, _ = Visitor(server).post_form(
                reverse("account_signup"),
                {
                    "display_name": "Erin",
                    "email": "erin@example.com",
                    "password1": PASSWORD,
                    "password2": PASSWORD,
                },
            )
            self.assertEqual(status, 200)
            [message] = inbox.wait_for(1)
        self.assertEqual(message["Subject"], "[jointbank] Please Confirm Your Email Address")
        # allauth's greeting names the site too (templates/account/email/base_message.txt).
        self.assertEqual(message.get_content().splitlines()[0], "Hello from jointbank!")


class EmailUrlTests(SimpleTestCase):
    def test_smtp_with_starttls(self):
        self.assertEqual(
            email_settings("smtp://user%40example.com:p%3Ass@mail.example.com:587?tls=1"),
            {
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "mail.example.com",
                "EMAIL_PORT": 587,
                "EMAIL_HOST_USER": "user@example.com",
                "EMAIL_HOST_PASSWORD": "p:ss",
                "EMAIL_USE_TLS": True,
                "EMAIL_USE_SSL": False,
                "EMAIL_TIMEOUT": 10,
            },
        )

    def test_smtps_is_tls_from_the_first_byte_on_465(self):
        config = email_settings("smtps://user:secret@mail.example.com?timeout=30")
        self.assertEqual(
            (config["EMAIL_PORT"], config["EMAIL_USE_SSL"], config["EMAIL_USE_TLS"]),
            (465, True, False),
        )
        self.assertEqual(config["EMAIL_TIMEOUT"], 30)

    def test_default_ports(self):
        self.assertEqual(email_settings("smtp://mail.example.com")["EMAIL_PORT"], 25)
        self.assertEqual(email_settings("smtp://mail.example.com?tls=yes")["EMAIL_PORT"], 587)

    def test_console(self):
        self.assertEqual(
            email_settings("console://"),
            {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"},
        )

    def test_it_refuses_what_it_does_not_understand_without_repeating_the_password(self):
        for url, reason in [
            ("smpt://u:hunter2@mail.example.com", "scheme must be smtp, smtps or console"),
            ("smtp://u:hunter2@mail.example.com:99999", "port is not a number"),
            ("smtp://u:hunter2@:25", "names no mail server"),
            ("smtp://u:hunter2@mail.example.com?tls=maybe", "tls must be 1 or 0"),
            ("smtp://u:hunter2@mail.example.com?ssl=1", "unknown option 'ssl'"),
            ("smtps://u:hunter2@mail.example.com?tls=1", "smtps:// is TLS already"),
            ("smtp://u:hunter2@mail.example.com?timeout=0", "timeout must be"),
        ]:
            with self.subTest(url=url), self.assertRaises(ImproperlyConfigured) as refused:
                email_settings(url)
            self.assertIn(reason, str(refused.exception))
            self.assertNotIn("hunter2", str(refused.exception))


class EmailSettingTests(SimpleTestCase):
    PRODUCTION = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "x" * 50}

    def test_production_refuses_to_start_without_an_email_setting(self):
        result = check(**self.PRODUCTION, DJANGO_EMAIL_URL="", DJANGO_EMAIL_BACKEND="")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("No e-mail setting. Set DJANGO_EMAIL_URL", result.stderr)

    def test_production_starts_with_either_setting(self):
        for setting in (
            {"DJANGO_EMAIL_URL": "smtp://mail.example.com:587?tls=1", "DJANGO_EMAIL_BACKEND": ""},
            {
                "DJANGO_EMAIL_URL": "",
                "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            },
        ):
            with self.subTest(setting=setting):
                result = check(**self.PRODUCTION, **setting)
                self.assertEqual(result.returncode, 0, result.stderr)

    def test_both_settings_at_once_are_refused(self):
        result = check(
            DJANGO_DEBUG="1",
            DJANGO_EMAIL_URL="console://",
            DJANGO_EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("not both", result.stderr)
